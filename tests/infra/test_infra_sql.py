"""infra/snowflake/*.sql, reviewed by parsing: every statement idempotent, the gateway role holds
exactly the privileges the design needs, no admin role or key material anywhere, and the tables
match the contract in docs/ARCHITECTURE.md."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "infra" / "snowflake"
GATEWAY_ROLE = "SPCS_GATEWAY_ROLE"
GATEWAY_USER = "GATEWAY_SVC"
ADMIN_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "ORGADMIN")

# Everything the gateway role may hold, and nothing more (03_gateway_role.sql says why).
EXPECTED_GATEWAY_GRANTS = {
    ("USAGE", "DATABASE", "PEDIATRIC_ML"),
    ("USAGE", "SCHEMA", "PEDIATRIC_ML.MODELS"),
    ("USAGE", "SCHEMA", "PEDIATRIC_ML.RESULTS"),
    ("USAGE", "SCHEMA", "PEDIATRIC_ML.CLINICAL_DATA"),
    ("USAGE", "WAREHOUSE", "GATEWAY_WH"),
    ("MONITOR", "COMPUTE POOL", "ML_INFERENCE_POOL"),
    ("OPERATE", "COMPUTE POOL", "ML_INFERENCE_POOL"),
    ("SELECT", "TABLE", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"),
    ("INSERT", "TABLE", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"),
    ("USAGE", "CORTEX SEARCH SERVICE", "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH"),
    ("SERVICE ROLE", "", "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!ALL_ENDPOINTS_USAGE"),
    ("SERVICE ROLE", "", "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE!ALL_ENDPOINTS_USAGE"),
    ("MONITOR", "SERVICE", "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"),
    ("OPERATE", "SERVICE", "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"),
    ("MONITOR", "SERVICE", "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"),
    ("OPERATE", "SERVICE", "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"),
    ("USAGE", "MODEL", "PEDIATRIC_ML.MODELS.BIOBERT_NER"),
    ("USAGE", "MODEL", "PEDIATRIC_ML.MODELS.BIOMEDCLIP_CLASSIFIER"),
    # 11 (optional, the reference route): read the referenced notes and images in Snowflake.
    ("SELECT", "TABLE", "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"),
    ("SELECT", "TABLE", "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES"),
    # Image files on a stage: the scoped URL needs READ on the internal stage, the reader UDF
    # USAGE.
    ("READ", "STAGE", "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGE_STAGE"),
    ("USAGE", "FUNCTION", "PEDIATRIC_ML.CLINICAL_DATA.READ_STAGED_FILE(STRING)"),
}
DEPLOYER_ROLE = "MODEL_DEPLOYER_ROLE"
# The deployer owns the models and services it creates; this is what it needs to create them.
EXPECTED_DEPLOYER_GRANTS = {
    ("USAGE", "DATABASE", "PEDIATRIC_ML"),
    ("USAGE", "SCHEMA", "PEDIATRIC_ML.MODELS"),
    ("USAGE", "WAREHOUSE", "GATEWAY_WH"),
    ("CREATE MODEL", "SCHEMA", "PEDIATRIC_ML.MODELS"),
    ("CREATE SERVICE", "SCHEMA", "PEDIATRIC_ML.MODELS"),
    ("CREATE IMAGE REPOSITORY", "SCHEMA", "PEDIATRIC_ML.MODELS"),
    ("USAGE", "COMPUTE POOL", "ML_INFERENCE_POOL"),
    ("MONITOR", "COMPUTE POOL", "ML_INFERENCE_POOL"),
    ("BIND SERVICE ENDPOINT", "ACCOUNT", ""),
}


def split_statements(sql: str) -> list[str]:
    """Statements of a Snowflake script, comments removed; ';' inside '...', "..." or $$...$$
    does not split. Whitespace is collapsed outside $$ bodies."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i < 0 else i
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            assert end >= 0, "unterminated /* comment"
            i = end + 2
            continue
        if sql.startswith("$$", i):
            end = sql.find("$$", i + 2)
            assert end >= 0, "unterminated $$ body"
            buf.append(sql[i : end + 2])
            i = end + 2
            continue
        if ch in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == ch and sql.startswith(ch * 2, j):
                    j += 2
                    continue
                if sql[j] == ch:
                    break
                j += 1
            assert j < n, "unterminated quote"
            buf.append(sql[i : j + 1])
            i = j + 1
            continue
        if ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(" " if ch.isspace() else ch)
        i += 1
    out.append("".join(buf))
    return [re.sub(r" +", " ", s).strip() for s in out if s.strip()]


def idempotency_problem(stmt: str) -> str | None:
    """Why a set-up statement would fail or change things on a second run (None when fine)."""
    up = stmt.upper()
    if re.match(r"(USE|SHOW|DESCRIBE|DESC|SELECT|WITH|GRANT|REVOKE)\b", up):
        return None
    if re.match(r"CREATE OR ALTER\b", up):
        return None
    if m := re.match(r"CREATE OR REPLACE (SECURE )?(\w+)", up):
        # Harmless only for code objects, and only if grants survive.
        if m.group(2) in ("FUNCTION", "VIEW") and "COPY GRANTS" in up:
            return None
        return "CREATE OR REPLACE drops the object (and its data or grants)"
    if up.startswith("CREATE "):
        if re.match(r"CREATE [A-Z ]+? IF NOT EXISTS\b", up):
            return None
        return "CREATE without IF NOT EXISTS"
    if up.startswith("ALTER "):
        if re.search(r"\b(ADD|RENAME|SWAP|SUSPEND|RESUME|DROP)\b", up):
            return "ALTER that adds, renames, drops or changes state is not repeatable"
        return None if re.search(r"\b(SET|UNSET)\b", up) else "ALTER without SET/UNSET"
    return "not a set-up statement (DROP, DML, CALL ...)"


@cache
def scripts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(SQL_DIR.glob("*.sql"))}


def all_statements() -> list[tuple[str, str]]:
    return [(name, s) for name, text in scripts().items() for s in split_statements(text)]


def role_grants(role: str) -> set[tuple[str, str, str]]:
    grants: set[tuple[str, str, str]] = set()
    for _, stmt in all_statements():
        up = stmt.upper()
        if not re.search(rf"\bTO ROLE {role}$", up):
            continue
        if m := re.match(r"GRANT SERVICE ROLE (\S+) TO ROLE", up):
            grants.add(("SERVICE ROLE", "", m.group(1)))
            continue
        if up.startswith("GRANT ROLE "):
            continue
        if m := re.match(r"GRANT (.+?) ON ACCOUNT TO ROLE", up):
            grants |= {(p.strip(), "ACCOUNT", "") for p in m.group(1).split(",")}
            continue
        m = re.match(r"GRANT (.+?) ON (\w+(?: \w+)*?) (\S+) TO ROLE", up)
        assert m, f"unparsed grant: {stmt}"
        privileges, kind, obj = m.groups()
        for privilege in privileges.split(","):
            grants.add((privilege.strip(), kind, obj))
    return grants


def gateway_grants() -> set[tuple[str, str, str]]:
    return role_grants(GATEWAY_ROLE)


# ---------------------------------------------------------------------------------------------


def test_infra_splitter_respects_quotes_comments_and_dollar_bodies() -> None:
    sql = (
        "-- header; not a statement\n"
        "CREATE TABLE IF NOT EXISTS T (A STRING DEFAULT ';'); /* x; y */\n"
        "CREATE OR ALTER FUNCTION F() RETURNS INT AS $$ SELECT 1; $$;\n"
        'GRANT USAGE ON SCHEMA "a;b" TO ROLE R'
    )
    assert split_statements(sql) == [
        "CREATE TABLE IF NOT EXISTS T (A STRING DEFAULT ';')",
        "CREATE OR ALTER FUNCTION F() RETURNS INT AS $$ SELECT 1; $$",
        'GRANT USAGE ON SCHEMA "a;b" TO ROLE R',
    ]


@pytest.mark.parametrize(
    ("stmt", "ok"),
    [
        ("CREATE TABLE IF NOT EXISTS T (A INT)", True),
        ("CREATE TABLE T (A INT)", False),
        ("CREATE OR REPLACE TABLE T (A INT)", False),
        ("CREATE OR REPLACE FUNCTION F() RETURNS INT AS $$1$$", False),
        ("CREATE OR ALTER FUNCTION F() RETURNS INT AS $$1$$", True),
        ("ALTER USER U SET RSA_PUBLIC_KEY = 'x'", True),
        ("ALTER USER U ADD PROGRAMMATIC ACCESS TOKEN P", False),
        ("ALTER SERVICE S SUSPEND", False),
        ("DROP TABLE IF EXISTS T", False),
        ("INSERT INTO T VALUES (1)", False),
        ("GRANT USAGE ON DATABASE D TO ROLE R", True),
    ],
)
def test_infra_idempotency_rule_itself(stmt: str, ok: bool) -> None:
    assert (idempotency_problem(stmt) is None) is ok


def test_infra_sql_scripts_are_numbered_01_to_11_without_gaps() -> None:
    names = list(scripts())
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, 12)]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.sql", n) for n in names)


def test_infra_every_sql_statement_is_idempotent() -> None:
    statements = all_statements()
    assert len(statements) > 30
    problems = [(name, s[:80], why) for name, s in statements if (why := idempotency_problem(s))]
    assert problems == []


def test_infra_every_script_chooses_its_role_first() -> None:
    for name, text in scripts().items():
        first = split_statements(text)[0].upper()
        assert re.fullmatch(r"USE ROLE \w+", first), name


def test_infra_gateway_role_gets_exactly_the_privileges_it_needs() -> None:
    assert gateway_grants() == EXPECTED_GATEWAY_GRANTS


def test_infra_no_admin_role_all_privileges_ownership_or_account_grant_to_the_gateway() -> None:
    for name, stmt in all_statements():
        up = stmt.upper()
        if not up.startswith("GRANT"):
            continue
        assert not re.search(r"\bALL( PRIVILEGES)?\b(?!_)", up), (name, stmt)
        assert not re.match(rf"GRANT ROLE ({'|'.join(ADMIN_ROLES)})\b", up), (name, stmt)
        if GATEWAY_ROLE in up or GATEWAY_USER in up:
            assert " ON ACCOUNT " not in up, (name, stmt)
            assert "OWNERSHIP" not in up, (name, stmt)
    user_grants = [
        s.upper() for _, s in all_statements() if re.search(rf"TO USER {GATEWAY_USER}$", s.upper())
    ]
    assert user_grants == [f"GRANT ROLE {GATEWAY_ROLE} TO USER {GATEWAY_USER}"]


def test_infra_no_key_token_or_password_literal_in_any_script() -> None:
    for name, text in scripts().items():
        assert "-----BEGIN" not in text, name
        assert not re.search(r"\bPASSWORD\s*=", text, re.I), name
        # Key material arrives only through client-side substitution.
        for m in re.finditer(r"RSA_PUBLIC_KEY(_2)?\s*=\s*'([^']*)'", text):
            assert re.fullmatch(r"&\{ ?\w+ ?\}", m.group(2)), name
        # No long base64 run (a key or a token) anywhere, comments included.
        assert not re.search(r"[A-Za-z0-9+/]{40,}={0,2}", text), name


def test_infra_substitution_variables_are_documented() -> None:
    readme = (SQL_DIR / "README.md").read_text(encoding="utf-8")
    used = {v for text in scripts().values() for v in re.findall(r"&\{ ?(\w+) ?\}", text)}
    assert used == {"gateway_public_key", "lambda_egress_cidrs"}
    for var in used:
        assert f"`{var}`" in readme, var
        assert f"{var}=" in readme, var


def _create_table(text: str, table: str) -> str:
    m = re.search(rf"CREATE TABLE IF NOT EXISTS {re.escape(table)} \((.*?)\);", text, re.S)
    assert m, table
    return re.sub(r"\s+", " ", m.group(1)).strip()


def test_infra_results_table_is_the_architecture_contract() -> None:
    arch = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
    sql = scripts()["06_tables.sql"]
    assert _create_table(sql, table) == _create_table(arch, table)
    notes = re.search(r"CLINICAL_NOTES \((.*?)\)\s*CHANGE_TRACKING", sql, re.S)
    assert notes
    columns = re.sub(r"\s+", " ", notes.group(1)).strip()
    assert columns in re.sub(r"\s+", " ", arch)


def test_infra_cortex_search_service_matches_the_architecture() -> None:
    stmt = next(
        s for _, s in all_statements() if s.upper().startswith("CREATE CORTEX SEARCH SERVICE")
    )
    assert re.search(
        r"IF NOT EXISTS PEDIATRIC_ML\.CLINICAL_DATA\.CLINICAL_NOTES_SEARCH ON NOTE_TEXT "
        r"ATTRIBUTES NOTE_TYPE, DEPARTMENT, PATIENT_ID WAREHOUSE = GATEWAY_WH "
        r"TARGET_LAG = '1 hour'",
        stmt,
    )
    assert "FROM PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES" in stmt


def test_infra_model_services_leave_suspension_to_the_gateway() -> None:
    from spcs_models.spec import DEPLOYMENTS

    alters = [s for _, s in all_statements() if s.upper().startswith("ALTER SERVICE")]
    # No IF EXISTS: 08 runs after the deployment and must fail while a service is missing.
    services = {re.match(r"ALTER SERVICE (\S+) SET", s).group(1) for s in alters}  # type: ignore[union-attr]
    assert services == {d.service for d in DEPLOYMENTS}
    for stmt in alters:
        assert "MIN_INSTANCES = 1" in stmt  # not snowflake-ml's default 0 (self-suspending)
        assert "AUTO_SUSPEND_SECS = 0" in stmt
        assert "AUTO_RESUME = TRUE" in stmt
    models = {obj for p, kind, obj in gateway_grants() if kind == "MODEL"}
    assert models == {d.model_name for d in DEPLOYMENTS}


def test_infra_deployer_role_gets_what_a_deployment_needs() -> None:
    assert role_grants(DEPLOYER_ROLE) == EXPECTED_DEPLOYER_GRANTS
    roles = {name: split_statements(text)[0] for name, text in scripts().items()}
    assert roles["08_model_services.sql"] == f"USE ROLE {DEPLOYER_ROLE}"


def test_infra_wrappers_call_the_deployed_method() -> None:
    from spcs_models.spec import DEPLOYMENTS

    text = scripts()["09_wrapper_udfs.sql"]
    calls = set(re.findall(r"(PEDIATRIC_ML\.MODELS\.\w+)!(\w+)\(", text))
    assert calls == {(d.service, d.method.upper()) for d in DEPLOYMENTS}


def test_infra_scripts_cite_only_this_repository() -> None:
    for name, text in [*scripts().items(), ("README.md", (SQL_DIR / "README.md").read_text())]:
        assert "../shared" not in text, name
        assert not re.search(r"\b(issues?|sessions?)\b", text, re.I), name


def test_infra_gateway_user_works_only_once_pinned_by_the_network_policy() -> None:
    """04 creates the user disabled; 05 attaches the network policy and only then enables it.
    No other statement enables it, so the credential never works from an unlisted address."""
    create = next(
        s
        for _, s in all_statements()
        if s.upper().startswith(f"CREATE USER IF NOT EXISTS {GATEWAY_USER}")
    )
    assert re.search(r"\bDISABLED = TRUE\b", create.upper())
    enabling = [
        (name, s)
        for name, s in all_statements()
        if re.search(rf"ALTER USER {GATEWAY_USER} SET .*DISABLED = FALSE", s.upper())
    ]
    assert [name for name, _ in enabling] == ["05_network_policy.sql"]
    order = [s.upper() for s in split_statements(scripts()["05_network_policy.sql"])]
    policy = next(i for i, s in enumerate(order) if "SET NETWORK_POLICY = GATEWAY_SVC_POLICY" in s)
    enable = next(i for i, s in enumerate(order) if "DISABLED = FALSE" in s)
    assert policy < enable
    # The policy allows the rule of the Lambda egress (IPs, or a VPC endpoint with PrivateLink).
    rule = next(s for s in order if s.startswith("CREATE NETWORK RULE"))
    assert "MODE = INGRESS" in rule
    assert "&{ LAMBDA_EGRESS_CIDRS }" in rule
