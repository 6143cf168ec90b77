#!/usr/bin/env python3
"""CDK entry point: `npx aws-cdk@2.1148.1 synth` / `deploy` run this (see cdk.json)."""

from aws_cdk import App

from infra.app import build_app

app = App()
build_app(app)
app.synth()
