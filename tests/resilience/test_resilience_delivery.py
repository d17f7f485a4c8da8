"""Which errors prove nothing was sent, and what a non-idempotent module retries."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience import NotDelivered, antifragile, not_delivered, runtime


class ConnectError(Exception):  # the name httpx uses for a failed connect
    pass


def _wrapped(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except OSError:
            raise RuntimeError("client library error") from None  # context kept
    except RuntimeError as exc:
        exc.__context__ = inner
        return exc


@pytest.mark.parametrize(
    "err",
    [
        ConnectionRefusedError(111, "refused"),
        socket.gaierror(-2, "Name or service not known"),
        OSError(113, "No route to host"),
        ConnectError("connect failed"),
        _wrapped(ConnectionRefusedError(111, "refused")),
    ],
)
def test_errors_that_prove_nothing_was_sent(err: BaseException) -> None:
    assert not_delivered(err)
    assert isinstance(err, NotDelivered)


@pytest.mark.parametrize(
    "err",
    [
        ConnectionResetError(104, "reset"),
        TimeoutError("read timed out"),
        ConnectionError("Connection closed by server."),
        BrokenPipeError(32, "pipe"),
        ValueError("bad reply"),
    ],
)
def test_errors_after_which_the_request_may_have_arrived(err: BaseException) -> None:
    assert not not_delivered(err)
    assert not isinstance(err, NotDelivered)


def test_a_cyclic_exception_chain_does_not_hang() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert not not_delivered(a)


def _sender(module: str, errors: list[BaseException], **decl: Any) -> tuple[list[int], Any]:
    sent: list[int] = []

    @antifragile(module, **decl)
    def send() -> str:
        sent.append(1)
        if len(sent) <= len(errors):
            raise errors[len(sent) - 1]
        return "ok"

    return sent, send


def test_default_retry_on_retries_only_what_was_never_sent() -> None:
    g = Genome.from_dict(
        "dlv_default", {"genes": {"retry": {"max_attempts": 3, "base_delay": 0.0}}}
    )
    assert g.genes["retry"]["on"] == ("NotDelivered",)
    sent, send = _sender("dlv_default", [ConnectionRefusedError(111, "refused")])
    with runtime.use_genome(g, "dlv_default"):
        assert send() == "ok"
    assert len(sent) == 2
    sent, send = _sender("dlv_default2", [ConnectionResetError(104, "reset")])
    with (
        runtime.use_genome(g.with_genes(g.genes), "dlv_default2"),
        pytest.raises(ConnectionResetError),
    ):
        send()
    assert len(sent) == 1


def test_a_declared_non_idempotent_module_ignores_a_broad_retry_gene() -> None:
    broad = Genome.from_dict(
        "dlv_orders",
        {"genes": {"retry": {"max_attempts": 5, "base_delay": 0.0, "on": ["Exception"]}}},
    )
    sent, send = _sender("dlv_orders", [ConnectionResetError(104, "reset")] * 3, idempotent=False)
    with runtime.use_genome(broad, "dlv_orders"), pytest.raises(ConnectionResetError):
        send()
    assert len(sent) == 1  # never re-sent
    sent2, send2 = _sender("dlv_orders", [ConnectionRefusedError(111, "refused")])
    with runtime.use_genome(broad, "dlv_orders"):
        assert send2() == "ok"  # a refused connect sent nothing: retried
    assert len(sent2) == 2


def test_a_module_declared_idempotent_in_the_file_retries_everything_by_default() -> None:
    g = Genome.from_dict("dlv_reads", {"idempotent": True, "genes": {"retry": {"max_attempts": 3}}})
    assert g.genes["retry"]["on"] == ("Exception",)
    assert g.to_dict()["idempotent"] is True
    explicit = Genome.from_dict(
        "dlv_reads", {"idempotent": True, "genes": {"retry": {"on": ["TimeoutError"]}}}
    )
    assert explicit.genes["retry"]["on"] == ("TimeoutError",)
    with pytest.raises(ValueError, match="idempotent: expected true or false"):
        Genome.from_dict("dlv_reads", {"idempotent": "yes", "genes": {}})


def test_the_decorator_refuses_a_non_bool_declaration() -> None:
    with pytest.raises(TypeError, match="idempotent"):
        antifragile("dlv_bad", idempotent="no")  # type: ignore[arg-type]
