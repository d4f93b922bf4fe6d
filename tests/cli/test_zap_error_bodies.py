"""A gateway's error reads as the Zap says it, not as the JSON it came in: the firmware's
`{"message": ...}`, the signing endpoint's `{"status": "error", "message": ...}`,
srcful-gateway's `{"status": "<error text>"}` (platform-apis §1.2-1.3), and a proxy's HTML
error page in front of the gateway by its title, never its markup. The CLI runs in this
process against the simulators (`test_plan_apply.make_cli`); gateway s1 answers the
adding of a device with the body under test."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_plan_apply
from simworld import serial_of, standard_site
from test_plan_apply import CliFactory

from reconciler.sim.fleet import SimFleet

make_cli = test_plan_apply.make_cli  # the fixture, shared

# nginx's 502 page, with the kind of script a load balancer's page carries: 40 KB of it.
PROXY_PAGE = ("<html>\r\n<head><title>502 Bad Gateway</title>"
              f"<script>{'var x = 1;' * 4000}</script></head>\r\n"
              "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
              "<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n")


def adding_answers(status: int, body: str, content_type: str) -> Callable[[SimFleet], None]:
    """Gateway s1 answers every POST /api/devices with `status` and `body`."""

    def install(sims: SimFleet) -> None:
        @web.middleware
        async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method == "POST" and request.path == "/api/devices":
                return web.Response(text=body, status=status, content_type=content_type)
            return await handler(request)

        sims.zaps[serial_of(1)].app.middlewares.append(answer)

    return install


@pytest.mark.parametrize(("status", "body", "content_type", "said"), [
    (400, '{"message": "Invalid config: unit_id out of range"}', "application/json",
     "HTTP 400: Invalid config: unit_id out of range"),
    (409, '{"status": "error", "message": "Device already exists"}', "application/json",
     "HTTP 409: Device already exists"),
    (400, '{"status": "Invalid profile"}', "application/json", "HTTP 400: Invalid profile"),
    (404, '{"error": "not_found", "message": "No such route"}', "application/json",
     "HTTP 404: not_found: No such route"),
    (502, PROXY_PAGE, "text/html",
     f"HTTP 502: 502 Bad Gateway (an HTML page of {len(PROXY_PAGE):,} characters)"),
], ids=["message", "status-error", "status-text", "error-and-message", "proxy-page"])
def test_a_gateways_error_says_the_zaps_words_not_its_json(
        make_cli: CliFactory, status: int, body: str, content_type: str, said: str) -> None:
    run = make_cli(standard_site(1), before_start=adding_answers(status, body, content_type))
    code, out, err = run("apply", run.path, "--auto-approve", "--no-color")
    assert code == 1, out + err
    failed = [line for line in out.splitlines() if "zap.add_device" in line]
    assert failed, out
    for line in failed:
        assert said in line, line
        assert "{" not in line and '"' not in line and "<" not in line, line
