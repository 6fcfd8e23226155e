"""VADER valence on clear positive, negative and neutral sentences."""

from __future__ import annotations

import pytest

from mmstream.pretrained.text_sentiment import TextSentiment


@pytest.fixture(scope="module")
def ts() -> TextSentiment:
    return TextSentiment()


@pytest.mark.parametrize("text", ["I am so happy to see you, this is wonderful!", "Thank you, I love it!",
                                  "What a great day, everything works perfectly."])
def test_positive(ts: TextSentiment, text: str) -> None:
    assert ts.valence(text) > 0.5


@pytest.mark.parametrize("text", ["I hate this. It is terrible and I am furious.", "I am so sad and lonely.",
                                  "This is awful, disgusting and wrong."])
def test_negative(ts: TextSentiment, text: str) -> None:
    assert ts.valence(text) < -0.5


@pytest.mark.parametrize("text", ["The meeting is at three o'clock in room four.", "The box is on the table.", ""])
def test_neutral(ts: TextSentiment, text: str) -> None:
    s = ts.scores(text)
    assert abs(s[3]) < 0.2 and s[1] > 0.8


def test_negation_flips(ts: TextSentiment) -> None:
    assert ts.valence("This is good.") > 0.3 > -0.3 > ts.valence("This is not good at all.")
