"""A small evaluator of synthesized CloudFormation: which resources and outputs exist for given parameter values.

It understands what our templates use to switch things on and off (Conditions with Fn::Equals / Fn::And / Fn::Or /
Fn::Not / Condition, Fn::If, AWS::NoValue) and resolves parameter references far enough to compare physical names
and custom-resource properties between two parameter sets. Values only known at deploy time (Ref of a resource,
Fn::GetAtt) stay symbolic; they are stable across parameter sets because logical ids are.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

NO_VALUE = object()
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "111122223333",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackName": "ImageSimilarity",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/ImageSimilarity/guid",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}
ROOT = "root"
_SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")

# Settings (every parameter but the choices below) take their default and this second value in the matrix; those
# with allowed values take the first other allowed value.
SAMPLE_ALTERNATIVES = {
    "APIGatewayStageName": "v2",
    "AllowedS3Buckets": "bucket-a,bucket-b",
    "LambdaMemorySize": "3008",
    "LambdaReservedConcurrency": "0",
    "SageMakerMinInstanceCount": "2",
    "SageMakerMaxInstanceCount": "4",
    "CustomDomainName": "api.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/0c9d6bd4-example",
    "WebACLArn": "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/images/0c9d6bd4-example",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:111122223333:image-similarity-alarms",
    "BatchOutputBucket": "batch-output",
}
# Settings that only make sense together: a variant that changes one changes the others too.
SAMPLE_GROUPS = [
    {"CustomDomainName", "CertificateArn"},  # the template's rule requires both
    {"SageMakerMinInstanceCount", "SageMakerMaxInstanceCount"},  # the maximum must not be below the minimum
    {"Alarms", "AlarmTopicArn"},
]
# Variants beyond one per setting (or group).
EXTRA_VARIANTS = [{"Alarms": "yes"}]  # alarms without a topic
# The parameters that decide what is deployed, beside the yes/no features: every combination of them is checked.
STRUCTURAL_CHOICES = ("InferenceBackend", "APIGatewayAuthorization")
# The features served on the REST API: it exists while any of them is on (batch embedding needs no API).
API_FEATURES = ("ImageSimilarity", "APIExplorer", "ImageSearch")


def has_api(parameters: Mapping[str, str]) -> bool:
    return any(parameters[name] == "yes" for name in API_FEATURES)


# Not a user choice: CDK's bootstrap version check, read from SSM.
NOT_IN_MATRIX = {"BootstrapVersion": "30"}


class Evaluator:
    """One template evaluated for one set of parameter values."""

    def __init__(
        self, template: dict, parameters: Mapping[str, object], pseudo: Mapping[str, object] = PSEUDO_PARAMETERS
    ) -> None:
        self.template = template
        self.pseudo = pseudo
        self.parameters: dict[str, object] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise KeyError(f"parameter {name} has no value and no default")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.parameters[name] = value
        self._conditions: dict[str, bool] = {}

    # -- conditions -------------------------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self._condition_expression(self.template["Conditions"][name])
        return self._conditions[name]

    def _condition_expression(self, expression: dict) -> bool:
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self.resolve(a) for a in argument)
            return left == right
        if function == "Fn::And":
            return all(self._condition_expression(e) for e in argument)
        if function == "Fn::Or":
            return any(self._condition_expression(e) for e in argument)
        if function == "Fn::Not":
            return not self._condition_expression(argument[0])
        raise ValueError(f"unsupported condition function {function}")

    def exists(self, element: dict) -> bool:
        name = element.get("Condition")
        return name is None or self.condition(name)

    @cached_property
    def resources(self) -> dict[str, dict]:
        return {k: v for k, v in self.template.get("Resources", {}).items() if self.exists(v)}

    @cached_property
    def outputs(self) -> dict[str, dict]:
        return {k: v for k, v in self.template.get("Outputs", {}).items() if self.exists(v)}

    # -- values -----------------------------------------------------------------------------------------------------
    def prune(self, value):
        """`value` with every Fn::If decided and AWS::NoValue removed; nothing else evaluated."""
        if isinstance(value, list):
            return [p for p in (self.prune(v) for v in value) if p is not NO_VALUE]
        if isinstance(value, dict):
            if len(value) == 1 and "Fn::If" in value:
                name, when_true, when_false = value["Fn::If"]
                return self.prune(when_true if self.condition(name) else when_false)
            if value == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            return {k: p for k, p in ((k, self.prune(v)) for k, v in value.items()) if p is not NO_VALUE}
        return value

    def resolve(self, value):
        """`value` pruned, with parameters and the functions over them evaluated where the inputs are known."""
        value = self.prune(value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            if argument in self.parameters:
                return self.parameters[argument]
            return self.pseudo.get(argument, value)
        if function == "Fn::Join":
            delimiter, items = argument
            items = self.resolve(items)
            if isinstance(items, list) and all(isinstance(i, str) for i in items):
                return delimiter.join(items)
            return {function: [delimiter, items]}
        if function == "Fn::Split":
            delimiter, source = argument
            source = self.resolve(source)
            return source.split(delimiter) if isinstance(source, str) else {function: [delimiter, source]}
        if function == "Fn::Select":
            index, items = self.resolve(argument)
            return items[int(index)] if isinstance(items, list) else {function: [index, items]}
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            variables = {k: self.resolve(v) for k, v in variables.items()}

            def substitute(match: re.Match) -> str:
                name = match.group(1)
                known = variables.get(name, self.parameters.get(name, self.pseudo.get(name)))
                return known if isinstance(known, str) else match.group(0)

            text = _SUB_VARIABLE.sub(substitute, text)
            unresolved = {k: v for k, v in variables.items() if not isinstance(v, str)}
            return text if not _SUB_VARIABLE.search(text) else {function: [text, unresolved]}
        return {function: self.resolve(argument)}

    def references(self, value) -> Iterator[tuple[str, str | None]]:
        """(logical id, attribute) of every Ref / GetAtt / Fn::Sub variable in the pruned `value`."""
        value = self.prune(value)
        if isinstance(value, list):
            for item in value:
                yield from self.references(item)
        elif isinstance(value, dict):
            for key, argument in value.items():
                if key == "Ref" and isinstance(argument, str):
                    yield argument, None
                elif key == "Fn::GetAtt":
                    target, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                    yield target, attribute
                elif key == "Fn::Sub":
                    text, variables = (argument, {}) if isinstance(argument, str) else argument
                    for name in _SUB_VARIABLE.findall(text):
                        target, _, attribute = name.partition(".")
                        if target not in variables:
                            yield target, attribute or None
                    yield from self.references(variables)
                else:
                    yield from self.references(argument)


@dataclass
class Deployment:
    """Root and nested templates evaluated for one combination of root parameter values."""

    parameters: dict[str, str]
    root: Evaluator
    nested: dict[str, Evaluator] = field(default_factory=dict)

    @classmethod
    def evaluate(
        cls,
        root: dict,
        nested: Mapping[str, dict],
        parameters: Mapping[str, str],
        pseudo: Mapping[str, object] = PSEUDO_PARAMETERS,
    ) -> Deployment:
        evaluator = Evaluator(root, {**NOT_IN_MATRIX, **parameters}, pseudo)
        deployment = cls(dict(parameters), evaluator)
        for logical_id, resource in evaluator.resources.items():
            if resource["Type"] == "AWS::CloudFormation::Stack":
                passed = evaluator.resolve(resource["Properties"].get("Parameters", {}))
                deployment.nested[logical_id] = Evaluator(nested[logical_id], passed, pseudo)
        return deployment

    def stacks(self) -> Iterator[tuple[str, Evaluator]]:
        yield ROOT, self.root
        yield from self.nested.items()

    @cached_property
    def resources(self) -> dict[tuple[str, str], tuple[str, object]]:
        """(stack, logical id) -> (type, resolved properties) of every resource that exists."""
        return {
            (stack, logical_id): (resource["Type"], evaluator.resolve(resource.get("Properties", {})))
            for stack, evaluator in self.stacks()
            for logical_id, resource in evaluator.resources.items()
        }

    @cached_property
    def canonical(self) -> dict[tuple[str, str], str]:
        """Each resource's resolved properties as one comparable string."""
        return {key: _canonical(properties) for key, (_, properties) in self.resources.items()}

    @cached_property
    def replacement_keys(self) -> dict[tuple[str, str], str]:
        return {key: replacement_key(kind, properties) for key, (kind, properties) in self.resources.items()}

    @cached_property
    def identities(self) -> dict[tuple[str, str], set[tuple]]:
        """What each resource must not share with a resource of another state (see `identities`)."""
        return {key: identities(self, key) for key in self.resources}

    def resource_types(self) -> list[str]:
        return sorted(f"{stack}/{kind}" for (stack, _), (kind, _) in self.resources.items())

    def dangling_references(self) -> list[str]:
        """Every reference from an existing resource or output to something that would not exist."""
        problems = []
        for stack, evaluator in self.stacks():
            elements = [("Resources", k, v) for k, v in evaluator.resources.items()]
            elements += [("Outputs", k, v) for k, v in evaluator.outputs.items()]
            for section, logical_id, element in elements:
                body = {k: v for k, v in element.items() if k in ("Properties", "Value")}
                for target, attribute in evaluator.references(body):
                    problem = self._reference_problem(evaluator, target, attribute)
                    if problem:
                        problems.append(f"{stack}/{section}/{logical_id} -> {target}: {problem}")
                for target in _as_list(element.get("DependsOn", [])):
                    if target not in evaluator.resources:
                        problems.append(f"{stack}/{section}/{logical_id} DependsOn {target}: resource does not exist")
            for logical_id, nested in self.nested.items() if stack == ROOT else ():
                problems += [f"{logical_id}: {p}" for p in _parameter_problems(evaluator, logical_id, nested)]
        return problems

    def _reference_problem(self, evaluator: Evaluator, target: str, attribute: str | None) -> str | None:
        if target in evaluator.parameters or target in evaluator.pseudo:
            return None if attribute is None else "GetAtt of a parameter"
        if target not in evaluator.resources:
            return "resource does not exist"
        nested_output = attribute.removeprefix("Outputs.") if attribute and attribute.startswith("Outputs.") else None
        if nested_output and target in self.nested and nested_output not in self.nested[target].outputs:
            return f"nested stack has no output {nested_output}"
        return None


def _parameter_problems(parent: Evaluator, logical_id: str, nested: Evaluator) -> list[str]:
    passed = set(parent.resources[logical_id]["Properties"].get("Parameters", {}))
    declared = nested.template.get("Parameters", {})
    required = {name for name, spec in declared.items() if "Default" not in spec}
    return [f"parameter {name} not passed" for name in sorted(required - passed)] + [
        f"parameter {name} passed but not declared" for name in sorted(passed - set(declared))
    ]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# -- the parameter matrix ------------------------------------------------------------------------------------------
def parameter_samples(template: dict) -> dict[str, list[str]]:
    """Two values per root parameter: the default first, then another allowed value or the sample alternative."""
    samples = {}
    for name, spec in template["Parameters"].items():
        if name in NOT_IN_MATRIX:
            continue
        allowed = spec.get("AllowedValues")
        if allowed:
            samples[name] = [spec["Default"], next(v for v in allowed if v != spec["Default"])]
        else:
            samples[name] = [spec["Default"], SAMPLE_ALTERNATIVES[name]]
    return samples


def feature_parameters(template: dict) -> list[str]:
    """The yes/no parameters of the console group "Features": with all of them "no", nothing is installed."""
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (features,) = [g["Parameters"] for g in groups if g["Label"]["default"] == "Features"]
    return features


def choice_parameters(template: dict) -> list[str]:
    """The features and the structural choices: the matrix has every combination of them."""
    return [*feature_parameters(template), *STRUCTURAL_CHOICES]


def setting_variants(template: dict) -> list[dict[str, str]]:
    """Sets of settings away from their defaults: each setting (with its group) alone, the extras, and all at once."""
    samples = parameter_samples(template)
    settings = [name for name in samples if name not in choice_parameters(template)]

    def alternative(names) -> dict[str, str]:
        return {name: samples[name][1] for name in sorted(names)}

    variants = []
    for name in settings:
        group = next((g for g in SAMPLE_GROUPS if name in g), {name})
        variants.append(alternative(group))
    variants += EXTRA_VARIANTS
    variants.append(alternative(settings))
    unique = []
    for variant in variants:
        if variant not in unique:
            unique.append(variant)
    return unique


def combinations(template: dict) -> list[dict[str, str]]:
    """Every combination of the choices with default settings and with every setting changed; each other setting
    variant with the default choices. Pairs of them are the transitions the update tests check."""
    samples = parameter_samples(template)
    defaults = {name: values[0] for name, values in samples.items()}
    choices = choice_parameters(template)
    everything_changed = setting_variants(template)[-1]
    found = []
    for values in itertools.product(*(samples[name] for name in choices)):
        chosen = dict(zip(choices, values, strict=True))
        found += [{**defaults, **chosen}, {**defaults, **everything_changed, **chosen}]
    found += [{**defaults, **variant} for variant in setting_variants(template)[:-1]]
    unique = []
    for combination in found:
        if combination not in unique:
            unique.append(combination)
    return unique


# -- transitions ---------------------------------------------------------------------------------------------------
# Properties whose change makes CloudFormation replace the resource (create the new one, then delete the old one).
_ALL = "*"
REPLACED_ON_CHANGE = {
    "AWS::ApiGateway::Method": {"RestApiId", "ResourceId", "HttpMethod"},
    "AWS::ApiGateway::Resource": {"RestApiId", "ParentId", "PathPart"},
    "AWS::ApiGateway::Stage": {"RestApiId", "StageName"},
    "AWS::Lambda::Function": {"FunctionName"},
    "AWS::Logs::LogGroup": {"LogGroupName"},
    "AWS::IAM::Role": {"RoleName", "Path"},
    "AWS::SageMaker::Model": _ALL,
    "AWS::SageMaker::EndpointConfig": _ALL,
    "AWS::SageMaker::Endpoint": {"EndpointName"},
}
# The property that fixes a resource's physical name in its account and region, by resource type.
NAME_PROPERTY = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
}


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def api_path(properties_by_id: Mapping[str, tuple[str, object]], resource_id) -> str:
    """The path of an API Gateway resource id: follows Ref -> AWS::ApiGateway::Resource -> ParentId up to the root."""
    if isinstance(resource_id, dict) and "Ref" in resource_id and resource_id["Ref"] in properties_by_id:
        _, props = properties_by_id[resource_id["Ref"]]
        return api_path(properties_by_id, props["ParentId"]).rstrip("/") + "/" + props["PathPart"]
    if isinstance(resource_id, dict) and resource_id.get("Fn::GetAtt", [None, None])[1] == "RootResourceId":
        return "/"
    return _canonical(resource_id)  # imported from elsewhere (e.g. a nested stack parameter): opaque but stable


def _physical(stack: str, value) -> str:
    """A name as CloudFormation would set it: a literal is global; anything symbolic is only known in its stack."""
    return value if isinstance(value, str) else f"{stack}:{_canonical(value)}"


def identities(deployment: Deployment, key: tuple[str, str]) -> set[tuple]:
    """What two resources must not share when one is created while the other still exists."""
    stack, _ = key
    kind, props = deployment.resources[key]
    in_stack = {lid: value for (s, lid), value in deployment.resources.items() if s == stack}
    name_property = NAME_PROPERTY.get(kind)
    found = {("name", kind, _physical(stack, props[name_property]))} if name_property in props else set()
    if kind == "AWS::ApiGateway::Method":
        path = api_path(in_stack, props["ResourceId"])
        found.add(("api-method", _canonical(props["RestApiId"]), path, props["HttpMethod"]))
    elif kind == "AWS::ApiGateway::Resource":
        found.add(("api-path", _canonical(props["RestApiId"]), api_path(in_stack, {"Ref": key[1]})))
    elif kind == "AWS::ApiGateway::Stage":
        found.add(("api-stage", _canonical(props["RestApiId"]), _canonical(props["StageName"])))
    if kind == "AWS::Lambda::Function" and isinstance(props.get("FunctionName"), str):
        found.add(("name", "AWS::Logs::LogGroup", f"/aws/lambda/{props['FunctionName']}"))
    return found


def replacement_key(kind: str, properties: dict) -> str:
    """The properties whose change replaces a resource of this kind, as one comparable string."""
    watched = REPLACED_ON_CHANGE.get(kind, set())
    if watched == _ALL:
        return _canonical(properties)
    return _canonical({p: properties.get(p) for p in sorted(watched)})


@dataclass
class Transition:
    """An update from one combination to another, as CloudFormation would run it."""

    before: Deployment
    after: Deployment

    @cached_property
    def created(self) -> set[tuple[str, str]]:
        return set(self.after.resources) - set(self.before.resources)

    @cached_property
    def deleted(self) -> set[tuple[str, str]]:
        return set(self.before.resources) - set(self.after.resources)

    @cached_property
    def replaced(self) -> set[tuple[str, str]]:
        common = set(self.before.resources) & set(self.after.resources)
        return {key for key in common if self.before.replacement_keys[key] != self.after.replacement_keys[key]}

    def collisions(self) -> set[tuple]:
        """Identities held by a resource being created while a resource being removed still holds them."""
        new = set().union(*(self.after.identities[k] for k in self.created | self.replaced))
        old = set().union(*(self.before.identities[k] for k in self.deleted | self.replaced))
        return new & old

    def updated(self, key: tuple[str, str]) -> bool:
        """Whether CloudFormation would create or update this resource of the target state."""
        if key not in self.before.resources:
            return True
        return self.before.canonical[key] != self.after.canonical[key]

    # -- the two phases of an update, as seen by the API Gateway stage ------------------------------------------------
    # CloudFormation first creates and updates resources (the update phase), then deletes what is gone or replaced
    # (the clean-up phase). A deployment snapshots the methods that exist when it is made.
    def cleanup_calls(self) -> list[dict]:
        """The SDK calls that the clean-up phase makes: the Delete call of each deleted or replaced custom resource."""
        calls = []
        for key in sorted(self.deleted | self.replaced | self.new_physical_ids()):
            kind, props = self.before.resources[key]
            if kind.startswith("Custom::") and isinstance(props, dict) and "Delete" in props:
                calls.append(json.loads(_render(props["Delete"])))
        return calls

    def new_physical_ids(self) -> set[tuple[str, str]]:
        """Custom resources that get a new physical id from their update (it is taken from the call's response):
        CloudFormation deletes the old one in the clean-up phase."""
        found = set()
        for key in set(self.before.resources) & set(self.after.resources):
            kind, props = self.after.resources[key]
            if (
                kind.startswith("Custom::")
                and self.updated(key)
                and '"responsePath"' in _render(props.get("Update", ""))
            ):
                found.add(key)
        return found

    def deployment_calls(self) -> int:
        """CreateDeployment calls of the whole update; API Gateway allows one per 5 seconds per account."""
        update_phase = [
            key
            for key, (kind, _) in self.after.resources.items()
            if kind == "Custom::ApiGatewayDeployment" and self.updated(key)
        ]
        cleanup_phase = [c for c in self.cleanup_calls() if c.get("action") == "createDeployment"]
        return len(update_phase) + len(cleanup_phase)

    def served(self) -> tuple[dict[tuple[str, str], dict], set[str]]:
        """After the update: the methods the managed stage serves (path, method -> properties) and the names of
        stages that clean-up calls deployed to without the stack managing them."""
        stage = next((k for k, (kind, _) in self.after.resources.items() if kind == "AWS::ApiGateway::Stage"), None)
        if stage is None:
            return {}, set()
        stage_name = self.after.resources[stage][1]["StageName"]
        deployment = next(k for k, (kind, _) in self.after.resources.items() if kind == "Custom::ApiGatewayDeployment")
        if self.updated(deployment):
            # Methods being deleted still exist in the update phase, with their old properties.
            served = {**_methods(self.before, self.deleted), **_methods(self.after)}
        else:
            served = _methods(self.before)
        unmanaged = set()
        for call in self.cleanup_calls():
            if call.get("action") != "createDeployment":
                continue
            if call["parameters"].get("stageName") == stage_name:
                served = _methods(self.after)
            else:
                unmanaged.add(call["parameters"].get("stageName"))
        return served, unmanaged

    def served_targets_missing(self) -> list[str]:
        """Integrations the stage serves after the update whose target (a nested stack) is gone."""
        served, _ = self.served()
        root = self.after.root
        known = set(root.resources) | set(root.parameters) | set(root.pseudo)
        return [
            f"{method} {path} -> {target}"
            for (path, method), props in served.items()
            for target, _attribute in root.references(props.get("Integration", {}))
            if target not in known
        ]


def _methods(deployment: Deployment, only: set | None = None) -> dict[tuple[str, str], dict]:
    root = {lid: value for (stack, lid), value in deployment.resources.items() if stack == ROOT}
    return {
        (api_path(root, props["ResourceId"]), props["HttpMethod"]): props
        for (stack, lid), (kind, props) in deployment.resources.items()
        if stack == ROOT and kind == "AWS::ApiGateway::Method" and (only is None or (stack, lid) in only)
    }


def _render(value) -> str:
    """A resolved value as text, with what is only known at deploy time written as a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return delimiter.join(_render(i) for i in items)
    return "<" + _canonical(value).replace('"', "'") + ">"


# -- the report ----------------------------------------------------------------------------------------------------
def resource_table(template: dict, deployments: list[Deployment]) -> str:
    """A Markdown table: for each combination of the choice parameters and the settings changed from their defaults,
    the resources that exist (type x count)."""
    choices = choice_parameters(template)
    defaults = {name: values[0] for name, values in parameter_samples(template).items()}
    rows: dict[tuple, set[str]] = {}
    for deployment in deployments:
        counts: dict[str, int] = {}
        for (stack, _), (kind, _) in deployment.resources.items():
            label = f"{stack.split('NestedStack')[0]}: {kind}"
            counts[label] = counts.get(label, 0) + 1
        cell = "<br>".join(f"{n} x {label}" if n > 1 else label for label, n in sorted(counts.items()))
        changed = sorted(k for k, v in deployment.parameters.items() if k not in choices and v != defaults[k])
        key = (*(deployment.parameters[c] for c in choices), ", ".join(changed) or "defaults")
        rows.setdefault(key, set()).add(cell)
    lines = [f"| {' | '.join(choices)} | settings | resources |", f"|{'---|' * (len(choices) + 2)}"]
    for key, cells in rows.items():
        lines += [f"| {' | '.join(key)} | {cell} |" for cell in sorted(cells)]
    return "\n".join(lines) + "\n"
