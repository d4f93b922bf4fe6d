"""What an observation could not read, as the messages name it: every kind of source the
planner can find `Unreachable`, each with where it was called and why, in a stable order;
what was read is not named."""

from __future__ import annotations

from reconciler.engine.config import Settings
from reconciler.engine.unread import unread_sources
from reconciler.plan.enapter_observed import EnapterSiteState, EnapterState
from reconciler.plan.flatpeak import FlatpeakState
from reconciler.plan.observed import IdentityReading, Observed, Unreachable, ZapState

SETTINGS = Settings(novacore_url="https://novacore.example", enapter_url="https://enapter.example",
                    flatpeak_url="https://flatpeak.example")


def test_every_unread_source_is_named_with_where_and_why() -> None:
    observed = Observed(
        novacore_sites={"org-b": Unreachable("HTTP 503"), "org-a": []},
        novacore_gateways={"org-a": Unreachable("timed out")},
        novacore_devices={"sit-1": Unreachable("HTTP 502"), "sit-2": []},
        zaps={"home-zap": Unreachable("connection refused", url="http://10.0.0.2"),
              "shed-zap": Unreachable("not observed"), "barn-zap": ZapState()},
        identities={"inv": IdentityReading(None, "no answer"), "ok": IdentityReading("SN1")},
        extra={
            "enapter": EnapterState(sites=[EnapterSiteState("s", "S", "UTC")],
                                    devices={"e-2": Unreachable("HTTP 500"), "e-1": []}),
            "flatpeak": FlatpeakState(locations=Unreachable("HTTP 429"), devices=[]),
        },
    )
    assert unread_sources(observed, SETTINGS) == [
        "Novacore (https://novacore.example), sites of organisation org-b: HTTP 503",
        "Novacore (https://novacore.example), gateways of organisation org-a: timed out",
        "Novacore (https://novacore.example), devices of site sit-1: HTTP 502",
        "gateway home-zap (http://10.0.0.2): connection refused",
        "gateway shed-zap: not observed",
        "serial of device inv: no answer",
        "Enapter (https://enapter.example), devices of e-2: HTTP 500",
        "Flatpeak (https://flatpeak.example), locations: HTTP 429",
    ]


def test_nothing_is_named_when_everything_was_read() -> None:
    observed = Observed(novacore_sites={"org-a": []}, zaps={"home-zap": ZapState()},
                        extra={"flatpeak": FlatpeakState(locations=[], devices=[])})
    assert unread_sources(observed, SETTINGS) == []
