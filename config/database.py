"""PostgreSQL connection options that the ``DATABASES`` setting adds."""


def dead_client_options(seconds: int) -> str:
    """libpq ``options`` that ask the server to find this client gone once it has not
    answered for about ``seconds``: keepalive probes after a third of it, every sixth,
    three unanswered; and no data left unacknowledged for longer (``tcp_user_timeout``,
    which Linux also applies to the probes). All four are settings any user may set.

    https://www.postgresql.org/docs/15/runtime-config-connection.html#GUC-TCP-KEEPALIVES-IDLE
    """
    return " ".join(
        [
            f"-c tcp_keepalives_idle={max(1, seconds // 3)}",
            f"-c tcp_keepalives_interval={max(1, seconds // 6)}",
            "-c tcp_keepalives_count=3",
            f"-c tcp_user_timeout={seconds * 1000}",  # milliseconds
        ]
    )
