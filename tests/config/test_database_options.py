from config.database import dead_client_options


def test_dead_client_options_find_a_silent_client_gone_within_the_given_seconds():
    options = dead_client_options(30)
    assert options.split(" -c ") == [
        "-c tcp_keepalives_idle=10",
        "tcp_keepalives_interval=5",
        "tcp_keepalives_count=3",
        "tcp_user_timeout=30000",
    ]
    assert "tcp_keepalives_interval=1 " in dead_client_options(2)  # never 0: the server's default
