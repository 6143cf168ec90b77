from image_similarity.adapters.cli import main

raise SystemExit(main())
