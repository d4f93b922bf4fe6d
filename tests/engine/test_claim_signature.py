"""A gateway claim is sent to Novacore only when the Zap signed this claim: what answers at
the gateway's URL (plain http on the local network) is put between the reconciler and the
simulated Zap, and answers /api/crypto/sign with a forged signature, a message signed for
another claimer or gateway (replayed), or a malformed one. The claim is refused with a
message saying why, and Novacore is never asked."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from simworld import MakeWorld, load, owner, serial_of, standard_site

from reconciler.engine.config import load_settings
from reconciler.sim.zap import ZapSimulator

SERIAL, OTHER = serial_of(1), serial_of(2)
CLAIM = "POST /gateways/claim"


def raw_signature(key: ec.EllipticCurvePrivateKey, message: str) -> str:
    r, s = decode_dss_signature(key.sign(message.encode(), ec.ECDSA(hashes.SHA256())))
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# Each takes the real Zap and the claimer asked for, and answers /api/crypto/sign.
def forged(zap: ZapSimulator, claimer: str) -> dict[str, Any]:
    message = f"{claimer}|424242|{stamp()}|{zap.serial}"
    return {"message": message, "sign": raw_signature(ec.generate_private_key(ec.SECP256R1()),
                                                      message)}


def replayed(zap: ZapSimulator, claimer: str) -> dict[str, Any]:
    message = f"idt-someone-else|424242|{stamp()}|{zap.serial}"
    return {"message": message, "sign": raw_signature(zap.private_key, message)}


def other_gateway(zap: ZapSimulator, claimer: str) -> dict[str, Any]:
    message = f"{claimer}|424242|{stamp()}|{OTHER}"
    return {"message": message, "sign": raw_signature(zap.private_key, message)}


def three_parts(zap: ZapSimulator, claimer: str) -> dict[str, Any]:
    message = f"{claimer}|424242|{zap.serial}"
    return {"message": message, "sign": raw_signature(zap.private_key, message)}


def unsigned(zap: ZapSimulator, claimer: str) -> dict[str, Any]:
    return {"message": f"{claimer}|424242|{stamp()}|{zap.serial}"}


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (forged, "the signature does not verify against the public key the gateway reports"),
        (replayed, "the signed message is for claimer 'idt-someone-else', not "),
        (other_gateway, f"the signed message is for gateway '{OTHER}', not '{SERIAL}'"),
        (three_parts, "the signed message has 3 parts, not the four of "
                      "claimer|nonce|timestamp|serial"),
        (unsigned, "the gateway's answer to /api/crypto/sign has no message and signature"),
    ],
)
async def test_a_claim_the_zap_did_not_sign_for_us_is_not_sent_to_novacore(
        answer: Any, why: str, make_world: MakeWorld, serve: Any) -> None:
    world = await make_world(standard_site(1))
    zap = world.sims.zaps[SERIAL]
    claimer = world.settings.claimer_identity()

    async def between(request: web.Request) -> web.Response:
        """Answers the sign request itself; passes everything else on to the Zap."""
        if request.path == "/api/crypto/sign":
            return web.json_response(answer(zap, claimer))
        async with aiohttp.ClientSession() as session, session.request(
                request.method, zap.url + request.path_qs, data=await request.read(),
                headers={"Content-Type": request.content_type}) as passed:
            return web.Response(status=passed.status, body=await passed.read(),
                                content_type=passed.content_type)

    url = await serve(between)
    world.settings = load_settings({**world.env, "RECONCILER_GATEWAY_URLS": f"{SERIAL}={url}"})
    world.sims.reset_counts()

    _, report = await world.apply()
    claim = next(o for o in report.outcomes if o.address == "gateway/s1-zap[novacore]")
    assert (claim.action, claim.status, claim.retryable) == ("claim", "failed", False)
    assert claim.message.startswith(
        f"the gateway at {url} answered a claim that does not hold: {why}"), claim.message
    assert claim.message.endswith("; not claimed. Check that the gateway's URL reaches this Zap")
    assert world.sims.novacore.requests[CLAIM] == 0, "Novacore was never sent the claim"
    assert owner(world.sims, SERIAL) is None


@pytest.mark.parametrize(("key_format", "signature_format"),
                         [("xy", "raw"), ("sec1", "der"), ("xy", "der"), ("sec1", "raw")])
async def test_the_zaps_own_signature_is_accepted_in_either_encoding(
        key_format: Any, signature_format: Any, make_world: MakeWorld) -> None:
    """Raw r‖s hex with an X‖Y key (open firmware) and DER hex with a SEC1 key (newer
    docs): both are the Zap's own signature, and the claim goes through, sent to Novacore
    as raw r‖s and X‖Y whatever the Zap answered: the form FTW sends and says Nova's
    verifier expects, and the only one the simulated Novacore reads by default."""

    def encodings(sims: Any) -> None:
        sims.zaps[SERIAL].public_key_format = key_format
        sims.zaps[SERIAL].signature_format = signature_format

    world = await make_world(standard_site(1), before_start=encodings)
    _, report = await world.apply(fleet=load(standard_site(1)))
    assert report.ok, report.as_dict()
    assert world.sims.novacore.requests[CLAIM] == 1
    assert owner(world.sims, SERIAL) == "org-alpha"


async def test_a_gateway_answering_with_a_key_of_its_own_is_not_claimed_nor_given_devices(
        make_world: MakeWorld, serve: Any) -> None:
    """What answers at the gateway's URL reports a public key of its own and signs the
    claim with it: the signature verifies against that key, but Novacore holds the Zap's
    key from manufacturing and refuses the claim; nothing is claimed, and no device (nor
    its MQTT password) is sent to what answered."""
    world = await make_world(standard_site(1))
    zap = world.sims.zaps[SERIAL]
    claimer = world.settings.claimer_identity()
    own_key = ec.generate_private_key(ec.SECP256R1())
    numbers = own_key.public_key().public_numbers()
    own_public = (numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")).hex()
    added: list[str] = []

    async def impostor(request: web.Request) -> web.Response:
        if request.path == "/api/crypto/sign":
            message = f"{claimer}|424242|{stamp()}|{zap.serial}"
            return web.json_response({"message": message,
                                      "sign": raw_signature(own_key, message)})
        if request.method == "POST" and request.path == "/api/devices":
            added.append(request.path)
        async with aiohttp.ClientSession() as session, session.request(
                request.method, zap.url + request.path_qs, data=await request.read(),
                headers={"Content-Type": request.content_type}) as passed:
            if request.path == "/api/crypto":
                return web.json_response({**await passed.json(), "publicKey": own_public})
            return web.Response(status=passed.status, body=await passed.read(),
                                content_type=passed.content_type)

    url = await serve(impostor)
    world.settings = load_settings({**world.env, "RECONCILER_GATEWAY_URLS": f"{SERIAL}={url}"})
    world.sims.reset_counts()

    _, report = await world.apply()
    claim = next(o for o in report.outcomes if o.address == "gateway/s1-zap[novacore]")
    assert (claim.action, claim.status, claim.retryable) == ("claim", "failed", False)
    assert "public_key_mismatch" in claim.message, claim.message
    assert world.sims.novacore.requests[CLAIM] == 1
    assert owner(world.sims, SERIAL) is None
    devices = [o for o in report.outcomes if o.address.endswith("[zap]")]
    assert devices and all(o.status == "skipped" for o in devices), report.as_dict()
    assert added == [] and not zap.devices
