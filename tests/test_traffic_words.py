"""What the simulated users sent, said in words (never a dict repr such as {'up': 0})."""

from workbench.sample import describe_traffic


def test_traffic_is_described_in_words():
    sent = {"requests": 14, "statuses": {200: 12, 401: 1, 422: 1},
            "feedback": {"up": 0, "down": 3}}
    assert describe_traffic(sent) == \
        "14 requests (HTTP 200 ×12, 401 ×1, 422 ×1); feedback: 0 thumbs up, 3 down"
    assert describe_traffic({"requests": 1, "statuses": {}, "feedback": {}}) == "1 request"
