"""Gives schemathesis something to find: signs the mechanic in and files two real requests, so the
session routes answer from real rows rather than 404 for every generated id.

    python seed.py BASE_URL EMAIL PASSWORD

Prints shell assignments (eval'd by scripts/schemathesis.sh):
  WL_TOKEN            the mechanic's access token (sent with every generated request)
  WL_SESSION_ID       a session this mechanic accepted (waiting): read, chat, start
  WL_END_ID           another accepted session, for end (which closes it)
  WL_OFFERED_ID       a session offered to mechanics and not yet accepted: accept
  WL_CUSTOMER_ID      a pending session whose waiver is not signed yet: waiver, resume link
  WL_CUSTOMER_COOKIE  the identity cookie of that session's customer
"""

import shlex
import sys

import requests

INTAKE = {
    "name": "Dana Driver",
    "email": "dana@example.com",
    "phone": "+1 555 010 2030",
    "vehicle": {"year": 2018, "make": "Honda", "model": "Civic", "vin": "1HGCM82633A004352", "mileage": 84000},
    "concern": "Grinding noise from the front when braking at low speed",
    "plan": "standard",
}


def expect(response: requests.Response, status: int) -> dict:
    if response.status_code != status:
        sys.exit(f"seed: {response.request.method} {response.url} -> {response.status_code} {response.text}")
    return response.json() if response.content else {}


def intake(base: str, signed: bool) -> tuple[str, str]:
    """A new customer's session; returns (session id, identity cookie)."""
    response = requests.post(f"{base}/api/intake", json=INTAKE, timeout=30)
    session = expect(response, 201)["session"]["id"]
    # The cookie is `Secure`, so a cookie jar would not send it back over plain http.
    cookie = response.cookies.get("wl_customer")
    if not cookie:
        sys.exit("seed: the intake set no wl_customer cookie")
    if signed:
        expect(
            requests.post(
                f"{base}/api/sessions/{session}/waiver",
                json={"signed_name": "Dana Driver", "agree": True},
                headers={"Cookie": f"wl_customer={cookie}"},
                timeout=30,
            ),
            200,
        )
    return session, cookie


def main() -> None:
    base, email, password = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    login = expect(
        requests.post(f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=30), 200
    )
    token = login["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}

    accepted, _ = intake(base, signed=True)
    expect(requests.post(f"{base}/api/sessions/{accepted}/accept", headers=bearer, timeout=30), 200)
    to_end, _ = intake(base, signed=True)
    expect(requests.post(f"{base}/api/sessions/{to_end}/accept", headers=bearer, timeout=30), 200)
    expect(
        requests.post(
            f"{base}/api/sessions/{accepted}/messages",
            headers=bearer,
            json={"body": "Hi, I'm on it.", "client_id": "seed-1"},
            timeout=30,
        ),
        201,
    )
    offered, _ = intake(base, signed=True)
    pending, cookie = intake(base, signed=False)

    for name, value in [
        ("WL_TOKEN", token),
        ("WL_SESSION_ID", accepted),
        ("WL_END_ID", to_end),
        ("WL_OFFERED_ID", offered),
        ("WL_CUSTOMER_ID", pending),
        ("WL_CUSTOMER_COOKIE", cookie),
    ]:
        print(f"{name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
