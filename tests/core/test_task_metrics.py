"""Task metrics against sklearn, a hand-worked conlleval example, brute force and hand-computed SQuAD cases."""
from __future__ import annotations

import random

import pytest
from sklearn.metrics import accuracy_score, f1_score

from brainalign.core.tasks.metrics import (accuracy, bio_entities, bio_entity_f1, macro_f1, normalize_answer,
                                           squad_em_f1, squad_scores)


# --- accuracy and macro-F1 vs sklearn -----------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_accuracy_and_macro_f1_match_sklearn(seed):
    rng = random.Random(seed)
    classes = ["a", "b", "c", "d"][: rng.randint(2, 4)]
    n = rng.randint(1, 40)
    y_true = [rng.choice(classes) for _ in range(n)]
    y_pred = [rng.choice(classes + ["z"]) for _ in range(n)]        # "z": predicted only
    assert accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    listed = ["a", "b", "c", "d", "q"]                                  # "q": neither gold nor predicted
    assert macro_f1(y_true, y_pred, labels=listed) == pytest.approx(
        f1_score(y_true, y_pred, labels=listed, average="macro", zero_division=0))


def test_accuracy_macro_f1_errors():
    with pytest.raises(ValueError, match="2 gold but 1 predicted"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        macro_f1([], [])


# --- BIO entity F1 ------------------------------------------------------------------------------

def test_bio_entity_f1_hand_worked():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],          # PER[0,2) LOC[3,4)                    -> 2
        ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],      # ORG[0,3) PER[4,5)                    -> 2
        ["O", "O", "O"],                                 # none                                 -> 0
        ["B-LOC", "B-LOC", "O", "B-MISC", "I-MISC"],    # LOC[0,1) LOC[1,2) MISC[3,5)          -> 3
    ]                                                    # 7 gold entities
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG", "O"],          # PER[0,2) ok; ORG[3,4) wrong type     -> 2 found, 1 ok
        ["B-ORG", "I-ORG", "O", "O", "I-PER"],          # ORG[0,2) wrong end; I-PER after O
                                                         # starts PER[4,5) (conlleval)  ok      -> 2 found, 1 ok
        ["O", "I-LOC", "I-LOC"],                         # LOC[1,3) (I after O starts)  wrong   -> 1 found, 0 ok
        ["B-LOC", "I-LOC", "O", "I-MISC", "I-PER"],     # LOC[0,2) wrong; MISC[3,4) wrong end;
                                                         # I-PER after I-MISC starts PER[4,5) wrong -> 3, 0 ok
    ]                                                    # 8 found, 2 correct
    precision, recall, f1 = bio_entity_f1(gold, pred)
    assert precision == pytest.approx(2 / 8)
    assert recall == pytest.approx(2 / 7)
    assert f1 == pytest.approx(2 * (2 / 8) * (2 / 7) / (2 / 8 + 2 / 7))
    assert bio_entities(pred[3]) == [(0, 2, "LOC"), (3, 4, "MISC"), (4, 5, "PER")]
    assert bio_entities(pred[1]) == [(0, 2, "ORG"), (4, 5, "PER")]


def _brute_entities(tags):
    """Every (start, end, type) that satisfies the conlleval definition, by enumeration."""
    def kind(t):
        return t[2:] if t != "O" else None

    found = set()
    n = len(tags)
    for s in range(n):
        for e in range(s + 1, n + 1):
            t = kind(tags[s])
            if t is None:
                continue
            begins = tags[s].startswith("B-") or s == 0 or kind(tags[s - 1]) != t
            inside = all(tags[k] == "I-" + t for k in range(s + 1, e))
            closed = e == n or tags[e] != "I-" + t
            if begins and inside and closed:
                found.add((s, e, t))
    return found


def test_bio_entity_f1_matches_brute_force():
    rng = random.Random(0)
    vocab = ["O", "B-A", "I-A", "B-B", "I-B"]
    for _ in range(30):
        gold, pred = [], []
        for _ in range(rng.randint(1, 5)):
            n = rng.randint(1, 9)
            gold.append([rng.choice(vocab) for _ in range(n)])
            pred.append([rng.choice(vocab) for _ in range(n)])
        n_gold = n_pred = n_ok = 0
        for g, p in zip(gold, pred):
            assert set(bio_entities(g)) == _brute_entities(g)
            ge, pe = _brute_entities(g), _brute_entities(p)
            n_gold, n_pred, n_ok = n_gold + len(ge), n_pred + len(pe), n_ok + len(ge & pe)
        prec = n_ok / n_pred if n_pred else 0.0
        rec = n_ok / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        assert bio_entity_f1(gold, pred) == pytest.approx((prec, rec, f1))


def test_bio_entity_f1_errors_and_edges():
    assert bio_entity_f1([["O", "O"]], [["O", "O"]]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="sequence 0 has 2 gold but 1 predicted"):
        bio_entity_f1([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="'PER' is not BIO"):
        bio_entity_f1([["PER"]], [["O"]])


# --- SQuAD EM/F1 --------------------------------------------------------------------------------

def test_normalize_answer():
    assert normalize_answer("  The Eiffel-Tower, in PARIS! ") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"                  # articles only as whole words
    assert normalize_answer("北京。") == "北京"


def test_squad_em_f1_hand_computed():
    # identical after normalisation
    assert squad_em_f1("the Denver Broncos", ["Denver Broncos"]) == (1.0, 1.0)
    # pred tokens {denver, broncos, team}, gold {denver, broncos}: same 2, P = 2/3, R = 1, F1 = 0.8
    em, f1 = squad_em_f1("Denver Broncos team", ["Denver Broncos"])
    assert em == 0.0 and f1 == pytest.approx(0.8)
    # max over gold answers: "broncos" vs ["denver broncos", "broncos"] -> EM 1 via the second
    assert squad_em_f1("Broncos", ["Denver Broncos", "Broncos"]) == (1.0, 1.0)
    # repeated tokens count once per match: pred [a1 a1 b] ("a1" twice), gold [a1 b b]: common a1, b = 2
    # P = 2/3, R = 2/3, F1 = 2/3
    assert squad_em_f1("a1 a1 b", ["a1 b b"])[1] == pytest.approx(2 / 3)
    # no overlap
    assert squad_em_f1("Carolina", ["Denver"]) == (0.0, 0.0)
    # CJK per character: pred 北京大学 (4 chars), gold 北京 (2): P 1/2, R 1, F1 2/3
    assert squad_em_f1("北京大学", ["北京"])[1] == pytest.approx(2 / 3)
    scores = squad_scores(["Denver Broncos team", "Broncos"], [["Denver Broncos"], ["Denver Broncos", "Broncos"]])
    assert scores["exact_match"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx((0.8 + 1.0) / 2)
    assert scores["n"] == 2
    with pytest.raises(ValueError, match="no gold answers"):
        squad_em_f1("x", [])
    with pytest.raises(ValueError, match="not one string"):
        squad_em_f1("x", "x")
