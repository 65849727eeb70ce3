"""Write template.yaml's SAM translation for checkov: ``python tests/infra/sam_translation.py OUT``.

The translation is the CloudFormation template ``sam deploy`` has CloudFormation run
(``infra_support.sam_translate``, aws-sam-translator offline, parameter defaults). SAM copies a
resource's ``Metadata`` onto the resource it becomes (AWS::Serverless::Function ->
AWS::Lambda::Function, AWS::Serverless::Api -> AWS::ApiGateway::RestApi) but not onto the others
it generates from it (the API's stage and deployment, a function's permissions and mappings). The
checkov skips written on a SAM resource are its decisions about everything generated from it, so
they are copied onto every generated resource whose logical id starts with that resource's id
(the longest such id wins: ``ApiprodStage`` comes from ``Api``, ``ApiFunctionNoteEntities...``
from ``ApiFunction``). Nothing else is changed: the skips stay the ones written in the template.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_support import raw_template, sam_translate


def translation_with_skips() -> dict[str, Any]:
    raw = raw_template()["Resources"]
    out = copy.deepcopy(sam_translate())
    sam_ids = sorted(
        (name for name, res in raw.items() if res["Type"].startswith("AWS::Serverless::")),
        key=len,
        reverse=True,
    )
    for name, res in out["Resources"].items():
        if name in raw or "checkov" in res.get("Metadata", {}):
            continue
        parent = next((p for p in sam_ids if name.startswith(p)), None)
        if parent is None:
            continue
        skips = raw[parent].get("Metadata", {}).get("checkov")
        if skips:
            res.setdefault("Metadata", {})["checkov"] = copy.deepcopy(skips)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: sam_translation.py OUT.json", file=sys.stderr)
        return 2
    # The transform warns about feature toggles it has no configuration for (offline): noise.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    target = Path(argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(translation_with_skips(), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
