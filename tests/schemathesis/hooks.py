"""schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

A VIN's 9th character is a check digit computed from the other sixteen (ISO 3779, North
American rule). The OpenAPI document states the VIN's shape as a pattern and the check digit in
words: no pattern can compute it. A client filling in a VIN gets it from the vehicle, so before
each intake is sent, a VIN of the right shape gets the check digit it should carry; everything
else about the generated body, valid or not, is sent as generated.

An upload is multipart/form-data with one part, `file`; the server refuses any other part. A
generated extra property whose value is an empty list (or null) puts no part into the multipart
body, so the request would carry `file` alone and be a valid upload, though it was generated as
one that breaks `additionalProperties`. Such a property is sent as one empty part, so that what is
sent is what was generated: a request with a part too many.
"""

import schemathesis

ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
VALUES = {str(d): d for d in range(10)} | dict(
    zip("ABCDEFGHJKLMNPRSTUVWXYZ", [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9])
)
WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def with_check_digit(vin: str) -> str:
    """`vin` (17 VIN characters, either case, white space around allowed) with its check digit."""
    start = len(vin) - len(vin.lstrip())
    core = vin.strip()
    total = sum(VALUES[c.upper()] * w for c, w in zip(core, WEIGHTS))
    digit = "X" if total % 11 == 10 else str(total % 11)
    return vin[: start + 8] + digit + vin[start + 9 :]


def has_vin_shape(value: object) -> bool:
    if not isinstance(value, str):
        return False
    core = value.strip()
    return len(core) == 17 and all(c.upper() in ALPHABET for c in core) and core.isascii()


@schemathesis.hook
def before_call(context, case, kwargs):
    if not isinstance(case.body, dict):
        return
    if case.operation.path == "/api/intake":
        vehicle = case.body.get("vehicle")
        if isinstance(vehicle, dict) and has_vin_shape(vehicle.get("vin")):
            vehicle["vin"] = with_check_digit(vehicle["vin"])
    elif case.operation.path == "/api/sessions/{id}/attachments":
        for name, value in case.body.items():
            if name != "file" and value in ([], None):
                case.body[name] = ""

