"""MMaDA's VLMEvalKit post-processing (``post_process_response``): the yes/no mapping runs before MME's 3-word cut."""
from __future__ import annotations

import pytest

from mmada_scoring.mme import parse_answer as mme_parse
from mmada_scoring.pope import parse_answer as pope_parse
from mmada_scoring.yes_no import mmada_post_process

# (response, dataset, expected) labelled by hand from the official rule
CASES = [
    ("Yes", "POPE", "Yes"),
    ("no", "POPE", "No"),
    ("The answer is yes.", "MME", "Yes"),  # the mapping runs first: never cut to "The answer is"
    ("The answer is yes.", "POPE", "Yes"),
    ("There is no dog in the image", "MME", "No"),
    ("I cannot tell from this picture at all", "MME", "No"),  # "cannot" contains "no"
    ("yes, there is a cat and no dog", "POPE", "Yes"),  # both words: the prefix decides
    ("no, but yes maybe", "MME", "No"),
    ("Maybe yes, maybe no at all", "MME", "Maybe yes, maybe"),  # both, neither prefix: MME cut
    ("Maybe yes, maybe no at all", "POPE", "Maybe yes, maybe no at all"),  # no cut outside MME
    ("  Yes and no  ", "POPE", "Yes"),  # prefix of the stripped text
    ("Absolutely correct here", "MME", "Absolutely correct here"),  # > 10 chars but only 3 words
    ("It is true", "MME", "It is true"),  # 3 words
    ("It is true ok", "MME", "It is true"),  # 4 words, 13 chars: cut
    ("a b c d", "MME", "a b c d"),  # 4 words but 7 characters: not cut
    ("", "MME", ""),
    ("Sure thing my friend, indeed", "MME_cognition", "Sure thing my"),  # the dataset name contains MME
    ("Sure thing my friend, indeed", "mme", "Sure thing my friend, indeed"),  # case-sensitive, as listinstr
    ("Nothing to see", "POPE", "No"),  # "nothing" contains "no"
    ("YES!", "MME", "Yes"),
]


@pytest.mark.parametrize("response, dataset, expected", CASES)
def test_post_process_rule(response, dataset, expected):
    assert mmada_post_process(response, dataset) == expected


@pytest.mark.parametrize("parse, dataset", [(pope_parse, "POPE"), (mme_parse, "MME")])
def test_long_answers_still_map_to_yes_no(parse, dataset):
    for text, label in [("The answer is yes.", "Yes"), ("After looking closely, the answer is no.", "No")]:
        assert parse(text, "vlmevalkit_mmada")["parsed"] == label, (dataset, text)
