"""The deployment tool: plan, explicit settings, idempotent orchestration, the CLI.

The Snowflake side is a fake ``Platform`` (and a fake Snowpark session for the SQL the real
platform issues); weights are fake directories. No network, no snowflake-ml.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from models_fakes import (
    BIOMEDCLIP_CONFIG,
    CHEMICAL_ID2LABEL,
    DISEASE_ID2LABEL,
    StandInSignatureModule,
)

from spcs_models import cli, deploy, signatures, spec, weights

HOSTS = {
    spec.NER.logical_name: "abc123-org-acct.snowflakecomputing.app",
    spec.BIOMEDCLIP.logical_name: "def456-org-acct.snowflakecomputing.app",
}


class FakePlatform:
    def __init__(
        self,
        *,
        versions: bool = False,
        services: bool = False,
        pending_polls: int = 0,
    ) -> None:
        self.versions = {d.logical_name: versions for d in spec.DEPLOYMENTS}
        self.services = {d.logical_name: services for d in spec.DEPLOYMENTS}
        self.pending = {d.logical_name: pending_polls for d in spec.DEPLOYMENTS}
        self.logged: list[tuple[str, Any, dict[str, Any]]] = []
        self.created: list[tuple[str, dict[str, Any]]] = []

    def version_exists(self, d: spec.ModelDeployment) -> bool:
        return self.versions[d.logical_name]

    def log_model(self, d: spec.ModelDeployment, model: Any, **kwargs: Any) -> None:
        self.logged.append((d.logical_name, model, kwargs))
        self.versions[d.logical_name] = True

    def service_exists(self, d: spec.ModelDeployment) -> bool:
        return self.services[d.logical_name]

    def create_service(self, d: spec.ModelDeployment, **kwargs: Any) -> None:
        assert self.versions[d.logical_name], "service created before its model version"
        self.created.append((d.logical_name, kwargs))
        self.services[d.logical_name] = True

    def ingress_host(self, d: spec.ModelDeployment) -> str | None:
        if self.pending[d.logical_name] > 0:
            self.pending[d.logical_name] -= 1
            return None
        return HOSTS[d.logical_name]


class FakeFetch:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Path, dict[str, str]]] = []

    def __call__(
        self,
        sources: Sequence[weights.WeightSource],
        work_dir: Path,
        *,
        revisions: Mapping[str, str] | None = None,
    ) -> dict[str, weights.FetchedArtifact]:
        self.calls.append(([s.repo_id for s in sources], work_dir, dict(revisions or {})))
        out = {}
        for s in sources:
            path = work_dir / s.artifact
            path.mkdir(parents=True, exist_ok=True)
            out[s.artifact] = weights.FetchedArtifact(s, path, s.revision or "c0ffee" * 6 + "abcd")
        return out


def make_deployer(
    platform: FakePlatform,
    *,
    fetch: Any = None,
    validate: Any = None,
    err: io.StringIO | None = None,
) -> tuple[deploy.Deployer, list[float], list[tuple[str, dict[str, Path]]]]:
    sleeps: list[float] = []
    validated: list[tuple[str, dict[str, Path]]] = []

    def record_validate(name: str, paths: Mapping[str, Path]) -> None:
        validated.append((name, dict(paths)))

    deployer = deploy.Deployer(
        platform,
        fetch=fetch or FakeFetch(),
        validate=validate or record_validate,
        build=lambda d, paths: ("model", d.logical_name, dict(paths)),
        signatures_for=lambda d: signatures.method_signatures(d, StandInSignatureModule),
        out=err or io.StringIO(),
        sleep=sleeps.append,
        clock=lambda: float(len(sleeps)),
    )
    return deployer, sleeps, validated


# -- explicit settings and plan -----------------------------------------------------------------


@pytest.mark.parametrize("deployment", spec.DEPLOYMENTS, ids=lambda d: d.logical_name)
def test_create_service_gets_every_setting_explicitly(deployment: spec.ModelDeployment) -> None:
    kwargs = deploy.service_kwargs(deployment, deploy.DeployOptions(image_repo="DB.S.REPO"))
    s = deployment.settings
    assert kwargs == {
        "service_name": deployment.service,
        "service_compute_pool": s.compute_pool,
        "image_build_compute_pool": s.compute_pool,
        "image_repo": "DB.S.REPO",
        "ingress_enabled": True,
        "min_instances": 1,
        "max_instances": s.max_instances,
        "cpu_requests": s.cpu_requests,
        "memory_requests": s.memory_requests,
        "gpu_requests": s.gpu_requests,
        "num_workers": s.num_workers,
        "max_batch_rows": s.max_batch_rows,
        "force_rebuild": False,
        "build_external_access_integrations": None,
        "block": True,
    }


def test_min_instances_zero_is_refused() -> None:
    zero = replace(spec.NER, settings=replace(spec.NER.settings, min_instances=0))
    with pytest.raises(deploy.DeployError, match="min_instances"):
        deploy.service_kwargs(zero, deploy.DeployOptions())


@pytest.mark.parametrize("deployment", spec.DEPLOYMENTS, ids=lambda d: d.logical_name)
def test_log_model_arguments_pin_everything(deployment: spec.ModelDeployment) -> None:
    kwargs = deploy.log_kwargs(deployment, comment="c")
    assert kwargs["model_name"] == deployment.model_name.rsplit(".", 1)[1]
    assert kwargs["version_name"] == deployment.version
    assert kwargs["pip_requirements"] == list(deployment.pip_requirements)
    assert kwargs["pip_requirements"]
    assert all("==" in r for r in kwargs["pip_requirements"])
    assert kwargs["target_platforms"] == ["SNOWPARK_CONTAINER_SERVICES"]
    assert kwargs["python_version"] == "3.11"
    assert kwargs["options"] == {"relax_version": False}
    [code] = kwargs["code_paths"]
    assert Path(code).name == "spcs_models"
    assert (Path(code) / "spec.py").is_file()


def test_plan_prints_settings_signatures_pip_and_weights() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["plan", "--image-repo", "PEDIATRIC_ML.MODELS.IMAGES"], out=out, err=err) == 0
    document = json.loads(out.getvalue())
    assert document["python"] == "3.11"
    by_name = {item["name"]: item for item in document["deployments"]}
    assert set(by_name) == {d.logical_name for d in spec.DEPLOYMENTS}
    for d in spec.DEPLOYMENTS:
        item = by_name[d.logical_name]
        service = item["create_service"]
        assert service["min_instances"] == 1
        assert service["ingress_enabled"] is True
        assert service["max_batch_rows"] == d.settings.max_batch_rows
        assert service["service_compute_pool"] == d.settings.compute_pool
        assert service["num_workers"] == d.settings.num_workers
        assert service["image_repo"] == "PEDIATRIC_ML.MODELS.IMAGES"
        assert item["log_model"]["signatures"] == {d.method: d.signature.to_dict()}
        assert item["log_model"]["pip_requirements"] == list(d.pip_requirements)
        assert item["registry_entry"] == d.registry_entry("https://<ingress_url>")
        assert [w["repo_id"] for w in item["weights"]] == [
            s.repo_id for s in weights.SOURCES[d.logical_name]
        ]
    ner_weights = by_name["biobert_ner"]["weights"]
    assert [w["revision"] for w in ner_weights] == [
        "f34bbf172059e8f6418c43efa925122feb46842b",
        "ce0fd86ac9e145d1a6ca3455219843e0a855471f",
    ]
    assert by_name["biomedclip"]["weights"][0]["revision"].startswith("unpinned")


def test_plan_runs_without_snowflake_ml_or_any_model_library() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    BLOCKED = ('snowflake.ml', 'snowflake.snowpark', 'pandas', 'torch', 'transformers',"
        " 'open_clip', 'huggingface_hub', 'numpy')\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(self.BLOCKED):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from spcs_models.cli import main\n"
        "sys.exit(main(['plan', '--only', 'biomedclip']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployments"][0]["name"] == "biomedclip"


# -- orchestration --------------------------------------------------------------------------------


def test_fresh_deploy_logs_creates_waits_and_returns_registry_entries(tmp_path: Path) -> None:
    platform = FakePlatform(pending_polls=2)
    fetch = FakeFetch()
    err = io.StringIO()
    deployer, sleeps, validated = make_deployer(platform, fetch=fetch, err=err)
    options = deploy.DeployOptions(work_dir=tmp_path, revisions={"x/y": "abc"}, endpoint_poll_s=5)
    entries = deployer.deploy(spec.DEPLOYMENTS, options)

    assert entries == [
        d.registry_entry(f"https://{HOSTS[d.logical_name]}") for d in spec.DEPLOYMENTS
    ]
    assert [name for name, _, _ in platform.logged] == ["biobert_ner", "biomedclip"]
    for (name, model, kwargs), d in zip(platform.logged, spec.DEPLOYMENTS, strict=True):
        assert model[:2] == ("model", name)
        sig = kwargs.pop("signatures")
        assert {k: signatures.as_stored(v) for k, v in sig.items()} == {
            d.method: d.signature.to_dict()
        }
        comment = kwargs.pop("comment")
        for source in weights.SOURCES[name]:
            assert source.repo_id in comment
        assert kwargs == {
            k: v for k, v in deploy.log_kwargs(d, comment="").items() if k != "comment"
        }
    assert platform.created == [
        (d.logical_name, deploy.service_kwargs(d, options)) for d in spec.DEPLOYMENTS
    ]
    # Weights validated (before logging) on the directories the model was built over.
    assert [name for name, _ in validated] == ["biobert_ner", "biomedclip"]
    assert validated[0][1] == platform.logged[0][1][2]
    assert fetch.calls[0][1] == tmp_path / "biobert_ner"
    assert fetch.calls[0][2] == {"x/y": "abc"}
    assert sleeps == [5, 5, 5, 5]
    log = err.getvalue()
    assert "at commit f34bbf172059e8f6418c43efa925122feb46842b (pinned)" in log
    assert "(resolved)" in log  # BiomedCLIP's unpinned head


def test_second_deploy_skips_what_exists(tmp_path: Path) -> None:
    platform = FakePlatform(versions=True, services=True)
    fetch = FakeFetch()
    err = io.StringIO()
    deployer, sleeps, _ = make_deployer(platform, fetch=fetch, err=err)
    entries = deployer.deploy(spec.DEPLOYMENTS, deploy.DeployOptions(work_dir=tmp_path))
    assert len(entries) == 2
    assert fetch.calls == []
    assert platform.logged == []
    assert platform.created == []
    assert sleeps == []
    assert "version V1 exists: skipped" in err.getvalue()
    assert "exists: skipped (not rebuilt)" in err.getvalue()


def test_existing_version_without_service_only_creates_the_service() -> None:
    platform = FakePlatform(versions=True)
    deployer, _, _ = make_deployer(platform)
    deployer.deploy([spec.BIOMEDCLIP], deploy.DeployOptions())
    assert platform.logged == []
    assert [name for name, _ in platform.created] == ["biomedclip"]


def test_failed_weight_check_stops_before_logging(tmp_path: Path) -> None:
    platform = FakePlatform()

    def reject(name: str, paths: Mapping[str, Path]) -> None:
        raise weights.WeightsError("NER checkpoints: labels are only LABEL_n defaults")

    deployer, _, _ = make_deployer(platform, validate=reject)
    with pytest.raises(weights.WeightsError):
        deployer.deploy([spec.NER], deploy.DeployOptions(work_dir=tmp_path))
    assert platform.logged == []
    assert platform.created == []


def test_endpoint_that_never_appears_is_a_clear_error() -> None:
    platform = FakePlatform(versions=True, services=True, pending_polls=10_000)
    deployer, sleeps, _ = make_deployer(platform)
    options = deploy.DeployOptions(endpoint_timeout_s=3, endpoint_poll_s=1)
    with pytest.raises(deploy.DeployError, match="spcs-models registry"):
        deployer.registry([spec.NER], options)
    assert len(sleeps) == 3


# -- weights checks on downloaded files -----------------------------------------------------------


def _write(path: Path, document: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(document))


def test_weights_validate_accepts_the_published_configs(tmp_path: Path) -> None:
    _write(tmp_path / "chem", {"id2label": CHEMICAL_ID2LABEL})
    _write(tmp_path / "dis", {"id2label": {str(k): v for k, v in DISEASE_ID2LABEL.items()}})
    weights.validate(
        "biobert_ner",
        {
            weights.NER_CHEMICAL_ARTIFACT: tmp_path / "chem",
            weights.NER_DISEASE_ARTIFACT: tmp_path / "dis",
        },
    )
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "open_clip_config.json").write_text(json.dumps(BIOMEDCLIP_CONFIG))
    _write(tmp_path / "text", {"model_type": "bert", "vocab_size": 30522})
    weights.validate(
        "biomedclip",
        {
            weights.CLIP_MODEL_ARTIFACT: tmp_path / "clip",
            weights.CLIP_TEXT_ARTIFACT: tmp_path / "text",
        },
    )


def test_weights_validate_rejects_an_untrained_head(tmp_path: Path) -> None:
    _write(tmp_path / "chem", {"id2label": {"0": "LABEL_0", "1": "LABEL_1"}})
    _write(tmp_path / "dis", {"id2label": DISEASE_ID2LABEL})
    with pytest.raises(weights.WeightsError, match="untrained"):
        weights.validate(
            "biobert_ner",
            {
                weights.NER_CHEMICAL_ARTIFACT: tmp_path / "chem",
                weights.NER_DISEASE_ARTIFACT: tmp_path / "dis",
            },
        )


def test_weights_validate_rejects_a_non_bert_text_config(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "open_clip_config.json").write_text(json.dumps(BIOMEDCLIP_CONFIG))
    _write(tmp_path / "text", {"model_type": "roberta"})
    with pytest.raises(weights.WeightsError, match="not a BERT"):
        weights.validate(
            "biomedclip",
            {
                weights.CLIP_MODEL_ARTIFACT: tmp_path / "clip",
                weights.CLIP_TEXT_ARTIFACT: tmp_path / "text",
            },
        )


def test_required_files_and_text_dir_assembly(tmp_path: Path) -> None:
    source = weights.NER_SOURCES[0]
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(weights.WeightsError, match=r"pytorch_model\.bin"):
        weights.check_required_files(source, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\0")
    weights.check_required_files(source, tmp_path)

    clip, text = tmp_path / "clip", tmp_path / "text"
    clip.mkdir()
    text.mkdir()
    for name in weights.CLIP_TEXT_TOKENIZER_FILES:
        (clip / name).write_text(name)
    weights.assemble_clip_text_dir(clip, text)
    assert sorted(p.name for p in text.iterdir()) == sorted(weights.CLIP_TEXT_TOKENIZER_FILES)


# -- the real platform's SQL, on a fake session -------------------------------------------------


class _Row:
    def __init__(self, **values: Any) -> None:
        self._values = values

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


class FakeSession:
    def __init__(self, answers: Mapping[str, list[_Row]]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    def sql(self, query: str) -> Any:
        self.queries.append(query)
        rows = self.answers.get(query, [])

        class _Result:
            def collect(self) -> list[_Row]:
                return rows

        return _Result()


def test_snowflake_platform_existence_checks_and_endpoint() -> None:
    session = FakeSession(
        {
            "SHOW MODELS LIKE 'BIOBERT_NER' IN SCHEMA PEDIATRIC_ML.MODELS": [
                _Row(name="BIOBERT_NER")
            ],
            "SHOW VERSIONS LIKE 'V1' IN MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER": [_Row(name="V1")],
            "SHOW SERVICES LIKE 'BIOBERT_NER_SERVICE' IN SCHEMA PEDIATRIC_ML.MODELS": [
                _Row(name="BIOBERT_NER_SERVICEX")  # LIKE's "_" wildcard: not the same name
            ],
            "SHOW ENDPOINTS IN SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE": [
                _Row(name="metrics", is_public="false", ingress_url="x.example"),
                _Row(name="inference", is_public="true", ingress_url=HOSTS["biobert_ner"]),
            ],
            "SHOW ENDPOINTS IN SERVICE PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE": [
                _Row(
                    name="inference",
                    is_public=True,
                    ingress_url="Endpoints provisioning in progress... check back in a few minutes",
                )
            ],
        }
    )
    platform = deploy.SnowflakePlatform(session)
    assert platform.version_exists(spec.NER) is True
    assert platform.service_exists(spec.NER) is False
    assert platform.ingress_host(spec.NER) == HOSTS["biobert_ner"]
    assert platform.ingress_host(spec.BIOMEDCLIP) is None
    assert platform.version_exists(spec.BIOMEDCLIP) is False  # no such model yet
    assert session.queries[-1] == (
        "SHOW MODELS LIKE 'BIOMEDCLIP_CLASSIFIER' IN SCHEMA PEDIATRIC_ML.MODELS"
    )


def test_names_that_are_not_plain_identifiers_never_reach_sql() -> None:
    hostile = replace(spec.NER, service="PEDIATRIC_ML.MODELS.X; DROP TABLE T")
    with pytest.raises(deploy.DeployError, match="plain identifiers"):
        deploy.SnowflakePlatform(FakeSession({})).service_exists(hostile)


def test_connection_options_follow_the_standard_sources() -> None:
    assert deploy.connection_options({}, connection_name="prod") == {"connection_name": "prod"}
    # Nothing named: the connector's own default connection (open_session resolves it).
    assert deploy.connection_options({"SNOWFLAKE_DEFAULT_CONNECTION_NAME": "dev"}) == {}
    assert deploy.connection_options({}, role="SYSADMIN") == {"role": "SYSADMIN"}
    env = {
        "SNOWFLAKE_ACCOUNT": "myorg-acct",
        "SNOWFLAKE_USER": "ops",
        "SNOWFLAKE_AUTHENTICATOR": "SNOWFLAKE_JWT",
        "SNOWFLAKE_PRIVATE_KEY_FILE": "/keys/ops.p8",
        "SNOWFLAKE_WAREHOUSE": "",
        "UNRELATED": "x",
    }
    assert deploy.connection_options(env) == {
        "account": "myorg-acct",
        "user": "ops",
        "authenticator": "SNOWFLAKE_JWT",
        "private_key_file": "/keys/ops.p8",
    }


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_deploy_prints_the_registry_fragment_and_the_next_steps() -> None:
    out, err = io.StringIO(), io.StringIO()
    platform = FakePlatform(versions=True, services=True)
    code = cli.main(["deploy"], out=out, err=err, platform_factory=lambda args: platform)
    assert code == 0
    document = json.loads(out.getvalue())
    assert document == {
        "services": [d.registry_entry(f"https://{HOSTS[d.logical_name]}") for d in spec.DEPLOYMENTS]
    }
    assert "08_model_services.sql" in err.getvalue()
    assert "spcs-gateway doctor" in err.getvalue()


def test_cli_registry_for_one_service() -> None:
    out = io.StringIO()
    platform = FakePlatform(versions=True, services=True)
    code = cli.main(
        ["registry", "--only", "biomedclip"],
        out=out,
        err=io.StringIO(),
        platform_factory=lambda args: platform,
    )
    assert code == 0
    [entry] = json.loads(out.getvalue())["services"]
    assert entry["name"] == "biomedclip"
    assert entry["url"] == f"https://{HOSTS['biomedclip']}"
    assert entry["method"] == "predict"
    assert entry["bytes_encoding"] == "base64"


def test_cli_deploy_failure_exits_one_with_the_reason() -> None:
    err = io.StringIO()
    platform = FakePlatform(versions=True, services=True, pending_polls=10_000)
    code = cli.main(
        ["registry", "--endpoint-timeout", "0"],
        out=io.StringIO(),
        err=err,
        platform_factory=lambda args: platform,
    )
    assert code == 1
    assert "no ingress URL" in err.getvalue()


def test_cli_deploy_without_snowflake_ml_says_how_to_get_it() -> None:
    pytest.importorskip("numpy")  # any venv; the point is snowflake-ml's absence
    if sys.version_info[:2] != (3, 11):
        pytest.skip("deploy refuses other Pythons first")
    try:
        import snowflake.ml  # noqa: F401

        pytest.skip("snowflake-ml-python is installed here")
    except ImportError:
        pass
    err = io.StringIO()
    assert cli.main(["deploy"], out=io.StringIO(), err=err, environ={}) == 2
    assert "make models-venv" in err.getvalue()


def test_registry_fragment_validates_as_gateway_service_configs() -> None:
    registry = pytest.importorskip("spcs_gateway.registry")
    for d in spec.DEPLOYMENTS:
        entry = d.registry_entry(f"https://{HOSTS[d.logical_name]}")
        config = registry.ServiceConfig.model_validate(entry)
        assert config.columns == d.signature.input_names
        assert config.out_column == d.signature.output_name
