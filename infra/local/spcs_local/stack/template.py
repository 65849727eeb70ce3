"""template.yaml read as CloudFormation would read it, for the local stack.

The template is decoded with cfn-lint's CloudFormation YAML loader (short tags become
``{"Ref": ...}``/``{"Fn::...": ...}``), parameter defaults are applied (plus overrides, like
``sam deploy --parameter-overrides``), and the intrinsic functions the template uses are
evaluated: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Split, Fn::Select, Fn::If, Fn::Equals,
Fn::Not, Fn::And, Fn::Or, Fn::FindInMap, Condition. Ref/GetAtt of a resource give the value of
the local resource once it exists (``set_physical``); resources the local stack does not create
(roles, layers, alarms ...) get stable placeholder values.

Versions and aliases (``AutoPublishAlias``, the SnapStart prerequisite) have no local
counterpart: there is one copy of each function's code, so the alias resolves to the function
itself. Ref of the alias SAM generates (``<Function>Alias<name>``, or ``<Function>.Alias``) is
the alias-qualified ARN, as in AWS, and the local Lambda API strips the qualifier when it looks
a function up. ``SnapStart`` is read (``FunctionDef.snapstart``) but nothing is snapshotted
locally: a function initialises in each container as it would without SnapStart.

Nothing here talks to AWS: ``resources.py`` creates what ``Template`` describes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVERLESS_FUNCTION = "AWS::Serverless::Function"


class TemplateError(ValueError):
    """The template uses something the local stack cannot evaluate or run."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def load_template(path: Path) -> dict[str, Any]:
    """Decode template.yaml with cfn-lint's loader into plain dicts and lists."""
    from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

    try:
        decoded = cfn_yaml.load(str(path))
    except Exception as exc:  # noqa: BLE001 - cfn-lint raises several types; the path is enough
        raise TemplateError(f"cannot decode {path} ({type(exc).__name__})") from None
    # The JSON round trip drops cfn-lint's node subclasses (line markers).
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


@dataclass(frozen=True)
class Physical:
    """What Ref and Fn::GetAtt answer for one created resource."""

    ref: Any
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SqsEvent:
    """One SQS event source of a function (an event source mapping)."""

    name: str
    mapping_id: str  # the UUID (Ref of SAM's implicit mapping resource)
    queue_arn: str
    batch_size: int
    window_s: float
    max_concurrency: int | None
    report_batch_item_failures: bool
    enabled: bool


@dataclass(frozen=True)
class ScheduleEvent:
    name: str
    expression: str
    enabled: bool
    input: Any = None


@dataclass(frozen=True)
class ApiEvent:
    name: str
    path: str
    method: str


@dataclass(frozen=True)
class FunctionDef:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str  # module.function
    timeout_s: float
    memory_mb: int
    environment: dict[str, str]
    reserved_concurrency: int | None = None
    sqs_events: tuple[SqsEvent, ...] = ()
    schedules: tuple[ScheduleEvent, ...] = ()
    apis: tuple[ApiEvent, ...] = ()
    alias: str | None = None  # AutoPublishAlias: events and the API call this alias
    snapstart: bool = False  # SnapStart.ApplyOn == PublishedVersions (informational locally)

    @property
    def target_arn(self) -> str:
        """What the function's event source mappings and API integration invoke: the
        alias-qualified ARN with AutoPublishAlias (the alias is the function locally)."""
        return f"{self.arn}:{self.alias}" if self.alias else self.arn


def _to_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_to_env(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "", NO_VALUE) else int(value)


def _truthy(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


class Template:
    def __init__(
        self,
        path: Path,
        parameters: Mapping[str, str] | None = None,
        *,
        stack_name: str = "spcs-gateway",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        partition: str = "aws",
        doc: dict[str, Any] | None = None,
    ) -> None:
        """``doc``: the template already decoded (e.g. its SAM translation); else ``path``'s."""
        self.path = path
        self.root = path.resolve().parent
        self.doc = doc if doc is not None else load_template(path)
        self.pseudo: dict[str, Any] = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/local"
            ),
        }
        given = dict(parameters or {})
        self.parameters: dict[str, Any] = {}
        for name, spec in self.doc.get("Parameters", {}).items():
            raw = given.pop(name, spec.get("Default", ""))
            raw = _to_env(raw)
            kind = str(spec.get("Type", "String"))
            self.parameters[name] = (
                raw.split(",") if kind.startswith("CommaDelimitedList") or "List<" in kind else raw
            )
        if given:
            raise TemplateError(f"unknown template parameters: {', '.join(sorted(given))}")
        self.physical: dict[str, Physical] = {}
        # SAM's implicit resources: an SQS event ``E`` of function ``F`` becomes the event source
        # mapping ``FE`` (Ref: its UUID). The runner creates the mapping with this UUID.
        self.implicit: dict[str, Physical] = {}
        for logical_id, res in self.resources.items():
            if res.get("Type") != SERVERLESS_FUNCTION:
                continue
            for event_name, event in res.get("Properties", {}).get("Events", {}).items():
                if event.get("Type") in ("SQS", "Kinesis", "DynamoDB", "MQ", "MSK"):
                    mapping_id = str(uuid.uuid4())
                    self.implicit[f"{logical_id}{event_name}"] = Physical(
                        mapping_id, {"Id": mapping_id}
                    )

    # -- structure ----------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.doc.get("Resources", {}))

    def active(self, logical_id: str) -> bool:
        """False when the resource's Condition is false (CloudFormation skips it)."""
        condition = self.resources[logical_id].get("Condition")
        return True if condition is None else self.condition(str(condition))

    def of_type(self, *kinds: str) -> dict[str, dict[str, Any]]:
        return {
            k: v for k, v in self.resources.items() if v.get("Type") in kinds and self.active(k)
        }

    def condition(self, name: str) -> bool:
        conditions = self.doc.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return bool(self.resolve(conditions[name]))

    def set_physical(self, logical_id: str, ref: Any, **attrs: Any) -> None:
        self.physical[logical_id] = Physical(ref, attrs)

    def depends_on(self, logical_id: str) -> set[str]:
        """Logical ids this resource refers to (Ref, GetAtt, ${X} in Sub, DependsOn)."""
        res = self.resources[logical_id]
        found = names_in(res.get("Properties", {}))
        depends = res.get("DependsOn", [])
        found |= set([depends] if isinstance(depends, str) else depends)
        return {n for n in found if n in self.resources and n != logical_id}

    def creation_order(self, logical_ids: Iterable[str]) -> list[str]:
        """Topological order (dependencies first) of the given resources among themselves."""
        wanted = list(logical_ids)
        pending = set(wanted)
        ordered: list[str] = []
        while pending:
            ready = sorted(n for n in pending if not (self.depends_on(n) & pending))
            if not ready:
                raise TemplateError(f"circular references among {sorted(pending)}")
            ordered.extend(ready)
            pending -= set(ready)
        return ordered

    # -- intrinsic functions -------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name].ref
        if name in self.implicit:
            return self.implicit[name].ref
        if name not in self.resources:
            alias_arn = self._alias_ref(name)
            if alias_arn is not None:
                return alias_arn
            raise TemplateError(f"Ref to unknown name {name}")
        return self._placeholder_ref(name)

    def function_alias(self, logical_id: str) -> str | None:
        """The function's AutoPublishAlias name, or None."""
        alias = self.function_prop(logical_id, "AutoPublishAlias")
        return str(alias) if alias else None

    def _alias_ref(self, name: str) -> str | None:
        """Ref of the alias SAM generates for a function with AutoPublishAlias
        (``<Function>Alias<alias>`` or SAM's ``<Function>.Alias``): the qualified ARN."""
        for logical_id in self.of_type(SERVERLESS_FUNCTION):
            alias = self.function_alias(logical_id)
            if alias and name in (f"{logical_id}Alias{alias}", f"{logical_id}.Alias"):
                return f"{self.function_arn(self.function_name(logical_id))}:{alias}"
        return None

    def getatt(self, name: str, attr: str) -> Any:
        if name in self.physical and attr in self.physical[name].attrs:
            return self.physical[name].attrs[attr]
        if name in self.implicit and attr in self.implicit[name].attrs:
            return self.implicit[name].attrs[attr]
        if name not in self.resources:
            raise TemplateError(f"GetAtt of unknown resource {name}")
        if name in self.physical and attr not in ("Arn",):
            raise TemplateError(f"GetAtt {name}.{attr} is not known locally")
        kind = str(self.resources[name].get("Type", ""))
        if attr == "Arn":
            if kind == SERVERLESS_FUNCTION:
                return self.function_arn(self.function_name(name))
            service = kind.split("::")[1].lower() if kind.count("::") >= 2 else "local"
            return f"arn:{self.pseudo['AWS::Partition']}:{service}:{self._region_account}:{name}"
        return f"{name}.{attr}"

    @property
    def _region_account(self) -> str:
        return f"{self.pseudo['AWS::Region']}:{self.pseudo['AWS::AccountId']}"

    def _placeholder_ref(self, name: str) -> Any:
        res = self.resources[name]
        kind = res.get("Type")
        props = res.get("Properties", {})
        if kind == SERVERLESS_FUNCTION:
            return self.function_name(name)
        for key in ("FunctionName", "LogGroupName", "Name", "TableName", "QueueName"):
            if key in props:
                return self.resolve(props[key])
        return name

    def function_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {})
        if "FunctionName" in props:
            return str(self.resolve(props["FunctionName"]))
        return f"{self.pseudo['AWS::StackName']}-{logical_id}"

    def function_arn(self, name: str) -> str:
        partition = self.pseudo["AWS::Partition"]
        return f"arn:{partition}:lambda:{self._region_account}:function:{name}"

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1).strip()
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                value = variables[key]
            elif "." in key and not key.startswith("AWS::"):
                value = self.getatt(*key.split(".", 1))
            else:
                value = self.ref(key)
            return ",".join(map(str, value)) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [r for r in (self.resolve(x) for x in node) if r is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self.ref(str(arg))
            if fn == "Condition":
                return self.condition(str(arg))
            if fn.startswith("Fn::"):
                return self._function(fn, arg)
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _function(self, fn: str, arg: Any) -> Any:
        if fn == "Fn::If":
            return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Equals":
            a, b = (self.resolve(x) for x in arg)
            return _to_env(a) == _to_env(b)
        if fn == "Fn::Not":
            return not self.resolve(arg[0])
        if fn == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if fn == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(_to_env(x) for x in self.resolve(items))
        if fn == "Fn::Split":
            delimiter, text = arg
            return str(self.resolve(text)).split(str(delimiter))
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if fn == "Fn::FindInMap":
            m, a, b = (str(self.resolve(x)) for x in arg)
            try:
                return self.doc["Mappings"][m][a][b]
            except KeyError:
                raise TemplateError(f"Fn::FindInMap {m}/{a}/{b} has no value") from None
        if fn == "Fn::GetAtt":
            name, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.getatt(str(name), str(attr))
        if fn == "Fn::Base64":
            import base64

            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        raise TemplateError(f"the local stack does not evaluate {fn}")

    # -- functions -----------------------------------------------------------------------------

    def function_prop(self, logical_id: str, prop: str, default: Any = None) -> Any:
        props = self.resources[logical_id].get("Properties", {})
        globals_ = self.doc.get("Globals", {}).get("Function", {})
        value = props.get(prop, globals_.get(prop, default))
        return self.resolve(value)

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals + the function's own variables, intrinsics resolved (CloudFormation's view)."""
        globals_ = self.doc.get("Globals", {}).get("Function", {})
        shared = globals_.get("Environment", {}).get("Variables", {})
        own = (
            self.resources[logical_id]
            .get("Properties", {})
            .get("Environment", {})
            .get("Variables", {})
        )
        resolved = self.resolve({**shared, **own})
        return {k: _to_env(v) for k, v in resolved.items() if v is not NO_VALUE}

    def functions(self) -> list[FunctionDef]:
        out: list[FunctionDef] = []
        for logical_id, res in sorted(self.of_type(SERVERLESS_FUNCTION).items()):
            props = res.get("Properties", {})
            code_uri = self.function_prop(logical_id, "CodeUri")
            if not isinstance(code_uri, str):
                raise TemplateError(f"{logical_id}: CodeUri must be a local directory")
            handler = str(self.function_prop(logical_id, "Handler", "app.lambda_handler"))
            name = self.function_name(logical_id)
            sqs: list[SqsEvent] = []
            schedules: list[ScheduleEvent] = []
            apis: list[ApiEvent] = []
            for event_name, event in sorted(props.get("Events", {}).items()):
                kind = event.get("Type")
                eprops = self.resolve(event.get("Properties", {}))
                if kind == "SQS":
                    scaling = eprops.get("ScalingConfig") or {}
                    concurrency = scaling.get("MaximumConcurrency")
                    sqs.append(
                        SqsEvent(
                            name=event_name,
                            mapping_id=str(self.implicit[f"{logical_id}{event_name}"].ref),
                            queue_arn=str(eprops["Queue"]),
                            batch_size=int(eprops.get("BatchSize", 10)),
                            window_s=float(eprops.get("MaximumBatchingWindowInSeconds", 0)),
                            max_concurrency=int(concurrency) if concurrency else None,
                            report_batch_item_failures="ReportBatchItemFailures"
                            in (eprops.get("FunctionResponseTypes") or []),
                            enabled=_truthy(eprops.get("Enabled"), True),
                        )
                    )
                elif kind in ("Schedule", "ScheduleV2"):
                    enabled = _truthy(eprops.get("Enabled"), True)
                    if str(eprops.get("State", "ENABLED")).upper() == "DISABLED":
                        enabled = False
                    schedules.append(
                        ScheduleEvent(
                            name=event_name,
                            expression=str(
                                eprops.get("Schedule") or eprops.get("ScheduleExpression")
                            ),
                            enabled=enabled,
                            input=eprops.get("Input"),
                        )
                    )
                elif kind == "Api":
                    apis.append(
                        ApiEvent(
                            name=event_name,
                            path=str(eprops.get("Path", "/")),
                            method=str(eprops.get("Method", "ANY")).upper(),
                        )
                    )
            out.append(
                FunctionDef(
                    logical_id=logical_id,
                    name=name,
                    arn=self.function_arn(name),
                    code_dir=(self.root / code_uri).resolve(),
                    handler=handler,
                    timeout_s=float(self.function_prop(logical_id, "Timeout", 3)),
                    memory_mb=int(self.function_prop(logical_id, "MemorySize", 128)),
                    environment=self.function_environment(logical_id),
                    reserved_concurrency=_int_or_none(
                        self.function_prop(logical_id, "ReservedConcurrentExecutions")
                    ),
                    sqs_events=tuple(sqs),
                    schedules=tuple(schedules),
                    apis=tuple(apis),
                    alias=self.function_alias(logical_id),
                    snapstart=(self.function_prop(logical_id, "SnapStart") or {}).get("ApplyOn")
                    == "PublishedVersions",
                )
            )
        return out


def names_in(node: Any) -> set[str]:
    """Logical ids referenced by Ref / GetAtt / ${X} / ${X.Attr} anywhere in a raw node."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= names_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= names_in(item)
    return found
