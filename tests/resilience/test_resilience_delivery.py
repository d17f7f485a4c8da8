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


def _failover(secondary_error: BaseException) -> BaseException:
    """The error of a client that fails over to a second server after the first refused
    it: the second one's error is raised while the refusal is being handled."""

    def primary() -> None:
        raise ConnectionRefusedError(111, "refused")

    def secondary() -> None:
        raise secondary_error

    try:
        try:
            primary()
        except OSError:
            secondary()
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "secondary_error",
    [
        ConnectionResetError(104, "reset"),
        ConnectionError("Connection closed by server."),  # a client library's own words
        RuntimeError("reply cut"),
    ],
)
def test_an_error_raised_while_handling_a_refusal_is_not_proof_of_it(
    secondary_error: BaseException,
) -> None:
    # The refused primary is the failover's context, not what this error wraps: the
    # secondary may have the request, and a non-idempotent write must not be re-sent.
    err = _failover(secondary_error)
    assert isinstance(err.__context__, ConnectionRefusedError)
    assert not not_delivered(err)


def test_a_refusal_wrapped_where_it_was_caught_still_proves_nothing_was_sent() -> None:
    def connect() -> None:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as exc:
            raise ConnectionError(f"Error 111 connecting: {exc}")  # noqa: B904

    with pytest.raises(ConnectionError) as wrapped:
        connect()
    assert not_delivered(wrapped.value)

    def reset_after_refusal() -> None:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as exc:
            raise ConnectionResetError(104, "reset") from exc

    # Wrapped as a reset says the opposite: the reset decides.
    with pytest.raises(ConnectionResetError) as reset:
        reset_after_refusal()
    assert not not_delivered(reset.value)


def test_a_failover_write_under_a_non_idempotent_module_is_sent_once() -> None:
    # The review's case: the primary refuses, the secondary's reply is cut; the module's
    # retry must not send the write again to either.
    sent: list[str] = []

    @antifragile("dlv_failover", idempotent=False)
    def push() -> str:
        try:
            sent.append("primary")
            raise ConnectionRefusedError(111, "refused")
        except OSError:
            sent.append("secondary")
            raise ConnectionResetError(104, "reply cut") from None

    broad = Genome.from_dict(
        "dlv_failover", {"genes": {"retry": {"max_attempts": 5, "base_delay": 0.0}}}
    )
    with runtime.use_genome(broad, "dlv_failover"), pytest.raises(ConnectionResetError):
        push()
    assert sent == ["primary", "secondary"]


def test_a_file_saying_idempotent_cannot_overrule_the_code_saying_it_is_not() -> None:
    # The review's case: @antifragile(idempotent=False) in the code, idempotent: true in
    # the genome file, a broad retry gene. False wins: the reset write is sent once.
    lenient = Genome.from_dict(
        "dlv_jobs",
        {"idempotent": True, "genes": {"retry": {"max_attempts": 5, "base_delay": 0.0}}},
    )
    assert lenient.genes["retry"]["on"] == ("Exception",)
    sent, send = _sender("dlv_jobs", [ConnectionResetError(104, "reset")] * 3, idempotent=False)
    with runtime.use_genome(lenient, "dlv_jobs"), pytest.raises(ConnectionResetError):
        send()
    assert len(sent) == 1
    assert runtime.idempotent("dlv_jobs", lenient) is False
    # Without a declaration in the code, the file's says what the module is.
    assert runtime.idempotent("dlv_undeclared", lenient) is True
