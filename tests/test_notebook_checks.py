"""The notebook's check cells catch a learner's typical mistakes: each broken cost fails with the right hint.

The cost cells and their check cells are taken from the stored notebook and executed in a plain namespace; a
mutant replaces one line of a cost's definition, as a learner's bug would.
"""

import re

import pytest
from notebook_costs import cost_cells, run_cells


@pytest.fixture(scope="module")
def pieces():
    return cost_cells()


def test_correct_costs_pass_every_check(pieces):
    definitions = {name: d for name, (d, _) in pieces.items()}
    for name, (_, checks) in pieces.items():
        assert checks, f"no check cell after {name}"
        _, printed = run_cells(definitions, checks)
        assert printed and all(line.endswith("passed") for line in printed), printed


MUTANTS = [
    # (cost, line fragment, replacement, words expected in the AssertionError)
    ("compute_content_cost", "tf.reduce_sum(", "tf.reduce_mean(", "reduce_mean"),
    ("compute_content_cost", "/ (4.0 * n_H * n_W * n_C)", "/ (n_H * n_W * n_C)", "1/4 is missing"),
    ("compute_content_cost", "/ (4.0 * n_H * n_W * n_C)", "/ 4.0", "dividing by 4 only"),
    ("compute_content_cost", "tf.square(a_C - a_G)", "tf.abs(a_C - a_G)", "not squared"),
    ("compute_content_cost", "tf.square(a_C - a_G)", "tf.square(a_C) - tf.square(a_G)", "symmetr"),
    ("gram_matrix", "tf.matmul(A, A, transpose_b=True)", "tf.matmul(A, A, transpose_a=True)", "Aᵀ·A"),
    (
        "compute_layer_style_cost",
        "tf.transpose(tf.reshape(a, (n_H * n_W, n_C)))",
        "tf.reshape(a, (n_C, n_H * n_W))",
        "wrong unrolling",
    ),
    ("compute_layer_style_cost", "/ (4.0 * n_C**2)", "/ (n_C**2)", "1/4 is missing"),
    ("compute_style_cost", "J_style += coefficient * ", "J_style += ", "coefficients are ignored"),
    ("total_cost", "return alpha * J_content + beta * J_style", "return beta * J_content + alpha * J_style", "swapped"),
    ("compute_guided_layer_style_cost", "a_G * mask * to_area", "a_G", "the mask is not applied"),
    ("compute_guided_layer_style_cost", "a_G * mask * to_area", "a_G * mask", "not by the mask's area"),
    ("compute_guided_layer_style_cost", "tf.reduce_sum(tf.square(mask))", "tf.reduce_sum(mask)", "Σ m², not Σ m"),
    ("compute_guided_layer_style_cost", "a_G * mask * to_area", "a_G * tf.sqrt(mask) * to_area", "multiplies a_G²"),
    (
        "compute_guided_layer_style_cost",
        "tf.sqrt(tf.math.divide_no_nan(float(n_H * n_W), area))",
        "tf.math.divide_no_nan(float(n_H * n_W), area)",
        "square root",
    ),
    ("compute_guided_layer_style_cost", "tf.math.divide_no_nan(", "tf.math.divide(", "an empty mask must cost 0"),
    ("compute_guided_style_cost", "J_style += coefficient * ", "J_style += ", "coefficients ignored"),
]


@pytest.mark.parametrize(("cost", "old", "new", "hint"), MUTANTS, ids=[f"{m[0]}:{m[3]}" for m in MUTANTS])
def test_a_typical_mistake_fails_with_its_hint(pieces, cost, old, new, hint):
    definitions = {name: d for name, (d, _) in pieces.items()}
    assert old in definitions[cost], f"the notebook's {cost} no longer contains {old!r}: update this mutant"
    if cost == "compute_layer_style_cost":  # both unrollings carry the same bug in a learner's copy
        new_source = definitions[cost].replace(old, new).replace(old.replace("a_S", "a_G"), new.replace("a_S", "a_G"))
    else:
        new_source = definitions[cost].replace(old, new)
    definitions[cost] = new_source
    with pytest.raises(AssertionError, match=re.escape(hint)):
        run_cells(definitions, pieces[cost][1])
