"""TLS to the clouds is verified by default: the simulated Novacore is served over https
with a certificate of a private CA. Without RECONCILER_CA_BUNDLE the plan does not reach it,
nothing is sent (so neither is the token), and the plan stops at once (exit 1, whatever
--offline says), saying that the certificate did not verify and which setting trusts a
private CA: a certificate that does not verify will not on retry, so no read is tried twice,
and it is no outage to defer. With the CA in the bundle, the same plan converges the site.
A failed handshake is named as one too, not by its errno, and an https:// URL of a server
that speaks plain HTTP stops the plan the same way: no retry makes it speak TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from simworld import MakeWorld, standard_site, write

from reconciler.engine.config import load_settings
from reconciler.errors import ProviderAuthError


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def private_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it issued for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class HttpsFront:
    """An https server on loopback that passes each request on to `backend` (http)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.received = 0
        self.handshakes = 0  # TLS handshakes begun (verified or not)
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.received += 1
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, self.backend + request.path_qs, data=await request.read(),
                headers=headers) as passed:
            return web.Response(status=passed.status, body=await passed.read(),
                                content_type=passed.content_type)

    def _hello(self, *_: object) -> None:
        self.handshakes += 1

    async def start(self, cert: Path, key: Path) -> str:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        context.sni_callback = self._hello  # called at every ClientHello, SNI or not
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"https://127.0.0.1:{port}"


@pytest.fixture
async def https_front() -> AsyncIterator[list[HttpsFront]]:
    fronts: list[HttpsFront] = []
    yield fronts
    for front in fronts:
        if front.runner is not None:
            await front.runner.cleanup()


async def test_a_cloud_certificate_of_an_untrusted_ca_stops_the_plan_unless_its_ca_is_bundled(
        make_world: MakeWorld, https_front: list[HttpsFront], tmp_path: Path) -> None:
    ca, cert, key = private_ca(tmp_path)
    world = await make_world(standard_site(1))
    front = HttpsFront(world.sims.novacore.url)
    https_front.append(front)
    url = await front.start(cert, key)
    env = {**world.env, "RECONCILER_NOVACORE_URL": url}

    world.settings = load_settings(env)
    with pytest.raises(ProviderAuthError) as refused:
        await world.plan()
    assert front.received == 0, "no request, and no token, went over the unverified connection"
    # One handshake per read (the organisation's sites, its gateways): none tried again.
    assert front.handshakes == 2
    message = str(refused.value)
    assert (f"cannot reach {url}: TLS certificate verification failed (unable to get local "
            "issuer certificate); to trust a private CA, name in RECONCILER_CA_BUNDLE a "
            "bundle of its certificates (it replaces the default roots)") in message, message
    assert "attempts" not in message, message

    world.settings = load_settings({**env, "RECONCILER_CA_BUNDLE": str(ca)})
    _, report = await world.apply()
    assert report.ok, report.as_dict()
    assert front.received > 0
    assert not (await world.plan()).plan.has_changes


async def _cli(command: list[str], fleet: Path, settings: dict[str, str]
               ) -> tuple[int | None, bytes, bytes]:
    """`reconciler COMMAND FLEET` in a subprocess with only `settings` of the RECONCILER_
    variables: its exit code, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler", *command, str(fleet),
        env={**env, **settings, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out, err


@pytest.mark.parametrize("command", [["plan", "--offline", "defer"], ["apply", "--auto-approve"]])
async def test_the_cli_exits_1_at_once_naming_the_ca_bundle_setting(
        make_world: MakeWorld, https_front: list[HttpsFront], tmp_path: Path,
        command: list[str]) -> None:
    _, cert, key = private_ca(tmp_path)
    docs = standard_site(1)
    world = await make_world(docs)
    front = HttpsFront(world.sims.novacore.url)
    https_front.append(front)
    url = await front.start(cert, key)
    code, out, err = await _cli(command, write(tmp_path / "sites", docs).parent,
                                {**world.env, "RECONCILER_NOVACORE_URL": url})
    assert code == 1, (out, err)
    assert out == b"", "no plan is shown: what the cloud holds is unknown"
    assert err.decode().splitlines() == [
        f"error: novacore.list_sites: cannot reach {url}: TLS certificate verification failed "
        "(unable to get local issuer certificate); to trust a private CA, name in "
        "RECONCILER_CA_BUNDLE a bundle of its certificates (it replaces the default roots)"]
    assert front.handshakes == 2 and front.received == 0


PLAIN_HTTP = ("TLS handshake failed (WRONG_VERSION_NUMBER): the server does not speak TLS on "
              "that port; if it serves plain HTTP, write the URL with http://")


async def test_https_to_a_server_that_speaks_plain_http_stops_the_plan_saying_so(
        make_world: MakeWorld) -> None:
    world = await make_world(standard_site(1))
    url = world.sims.novacore.url.replace("http://", "https://")
    world.settings = load_settings({**world.env, "RECONCILER_NOVACORE_URL": url})
    with pytest.raises(ProviderAuthError) as refused:
        await world.plan()
    message = str(refused.value)
    assert f"cannot reach {url}: {PLAIN_HTTP}" in message, message
    assert "attempts" not in message, "not retried, as an outage would be"


@pytest.mark.parametrize("command", [["plan", "--detailed-exitcode"], ["apply", "--auto-approve"]])
async def test_the_cli_exits_1_at_once_on_https_to_plain_http(
        make_world: MakeWorld, tmp_path: Path, command: list[str]) -> None:
    docs = standard_site(1)
    world = await make_world(docs)
    url = world.sims.novacore.url.replace("http://", "https://")
    code, out, err = await _cli(command, write(tmp_path / "sites", docs).parent,
                                {**world.env, "RECONCILER_NOVACORE_URL": url})
    assert code == 1, (out, err)
    assert out == b"", "no plan is shown: what the cloud holds is unknown"
    assert err.decode().splitlines() == [
        f"error: novacore.list_sites: cannot reach {url}: {PLAIN_HTTP}"]
