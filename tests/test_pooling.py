"""Every registered pooler against the pooler contract, plus each method's own semantics."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from ranker.pooling import POOLERS, build_pooler, pooler_from_config

HIDDEN, LAYERS, HEADS = 32, 3, 4
ALL_MODES = sorted(POOLERS)
TRAINABLE = [
    m
    for m in ALL_MODES
    if any(True for _ in build_pooler(m, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS).parameters())
]


def make(mode: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_pooler(mode, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS, **kw).eval()


def text_states(length: int, seed: int = 1) -> list[torch.Tensor]:
    """Hidden states (one per layer, embedding output included) of one text: (L+1, length, H)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(length, HIDDEN, generator=g) for _ in range(LAYERS + 1)]


def padded(states: list[torch.Tensor], total: int, side: str, junk: float = 1e4):
    """One row padded to ``total`` on ``side``; padding positions hold large junk values."""
    length = states[0].shape[0]
    pad = total - length
    out = []
    for s in states:
        filler = torch.full((pad, HIDDEN), junk)
        out.append((torch.cat([s, filler]) if side == "right" else torch.cat([filler, s]))[None])
    mask = (
        torch.cat([torch.ones(length), torch.zeros(pad)])
        if side == "right"
        else torch.cat([torch.zeros(pad), torch.ones(length)])
    )
    return out, mask[None].long()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_padding_side_and_amount_do_not_change_the_vector(mode):
    pooler = make(mode)
    states = text_states(5)
    reference = pooler(*padded(states, 5, "right"))
    for side in ("right", "left"):
        for total in (6, 11):
            got = pooler(*padded(states, total, side))
            torch.testing.assert_close(
                got, reference, atol=1e-5, rtol=1e-5, msg=f"{mode}: {side} padding to {total}"
            )


@pytest.mark.parametrize("mode", ALL_MODES)
def test_batch_companions_do_not_change_the_vector(mode):
    pooler = make(mode)
    alone = pooler(*padded(text_states(4, seed=1), 4, "right"))
    rows = [padded(text_states(n, seed=s), 9, "right") for n, s in ((4, 1), (9, 2), (2, 3))]
    hidden = [torch.cat([r[0][i] for r in rows]) for i in range(LAYERS + 1)]
    mask = torch.cat([r[1] for r in rows])
    torch.testing.assert_close(pooler(hidden, mask)[0:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_fully_padded_rows_are_finite_and_inputs_untouched(mode):
    pooler = make(mode)
    hidden = [torch.randn(3, 6, HIDDEN) for _ in range(LAYERS + 1)]
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]])
    before = [h.clone() for h in hidden], mask.clone()
    out = pooler(hidden, mask)
    assert out.shape == (3, pooler.output_dim)
    assert torch.isfinite(out).all()
    for h, b in zip(hidden, before[0], strict=True):
        assert torch.equal(h, b)
    assert torch.equal(mask, before[1])


@pytest.mark.parametrize("mode", TRAINABLE)
def test_gradients_reach_every_trainable_parameter(mode):
    pooler = make(mode).train()
    hidden = [torch.randn(3, 6, HIDDEN, requires_grad=True) for _ in range(LAYERS + 1)]
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    out = pooler(hidden, mask)
    # against a random target: a plain sum of squares has no gradient through an L2 norm
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    (out - target).pow(2).sum().backward()
    for name, param in pooler.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{mode}: no gradient for {name}"


@pytest.mark.parametrize("mode", ALL_MODES)
def test_config_and_weights_round_trip_exactly(mode, tmp_path):
    pooler = make(mode)
    with torch.no_grad():  # move off the initialization so a fresh init would differ
        for p in pooler.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    config = pooler.get_config()
    assert config["mode"] == mode
    torch.manual_seed(123)
    clone = pooler_from_config(config).eval()
    assert clone.get_config() == config
    state = {k: v.contiguous() for k, v in pooler.state_dict().items()}
    if state:
        save_file(state, str(tmp_path / "p.safetensors"))
        clone.load_state_dict(load_file(str(tmp_path / "p.safetensors")))
    hidden = [torch.randn(2, 5, HIDDEN) for _ in range(LAYERS + 1)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert torch.equal(pooler(hidden, mask), clone(hidden, mask))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", ALL_MODES)
def test_half_precision(mode, dtype):
    pooler = make(mode)
    hidden = [torch.randn(2, 5, HIDDEN) for _ in range(LAYERS + 1)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    full = pooler(hidden, mask)
    half = pooler.to(dtype)([h.to(dtype) for h in hidden], mask)
    assert half.dtype == dtype and torch.isfinite(half).all()
    cosine = torch.nn.functional.cosine_similarity(half.float(), full, dim=-1)
    assert (cosine > 0.99).all(), f"{mode} {dtype}: cosine {cosine}"


# -- what each method computes ---------------------------------------------------------------
HID = [torch.arange(2 * 4 * HIDDEN, dtype=torch.float32).reshape(2, 4, HIDDEN) / 100 - 1]
MASK = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])  # right padding, then left padding


def test_mean_max_cls_last_pick_the_right_tokens():
    h = HID[0]
    torch.testing.assert_close(make("mean")(HID, MASK)[0], h[0, :3].mean(0))
    torch.testing.assert_close(make("mean")(HID, MASK)[1], h[1, 1:].mean(0))
    torch.testing.assert_close(make("max")(HID, MASK)[1], h[1, 1:].max(0).values)
    torch.testing.assert_close(make("cls")(HID, MASK), torch.stack([h[0, 0], h[1, 1]]))
    torch.testing.assert_close(make("last")(HID, MASK), torch.stack([h[0, 2], h[1, 3]]))


def test_weighted_mean_weights_grow_with_position_from_the_first_real_token():
    h = HID[0]
    expected = (h[1, 1] * 1 + h[1, 2] * 2 + h[1, 3] * 3) / 6
    torch.testing.assert_close(make("weighted_mean")(HID, MASK)[1], expected)


def test_gem_with_p_one_is_mean_and_large_p_approaches_max():
    x = [torch.rand(2, 4, HIDDEN) + 0.1]
    mean = make("mean")(x, MASK)
    torch.testing.assert_close(make("gem", p_init=1.0)(x, MASK), mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(make("gem", p_init=1.0, signed="symmetric")(x, MASK), mean)
    signed = [torch.randn(2, 4, HIDDEN)]
    torch.testing.assert_close(
        make("gem", p_init=1.0, signed="symmetric")(signed, MASK),
        make("mean")(signed, MASK),
        atol=1e-5,
        rtol=1e-5,
    )
    x = [torch.rand(2, 4, HIDDEN) + 0.5]
    near_max = make("gem", p_init=40.0)(x, MASK)
    torch.testing.assert_close(near_max, make("max")(x, MASK), atol=0.05, rtol=0.05)


def test_ggem_has_one_exponent_per_head_and_they_act_per_group():
    pooler = make("ggem")
    assert pooler.p.shape == (HEADS,) and pooler.groups == HEADS
    x = [torch.rand(2, 4, HIDDEN) + 0.1]
    with torch.no_grad():
        pooler.p.copy_(torch.tensor([1.0, 1.0, 1.0, 50.0]))
    out = pooler(x, MASK)
    width = HIDDEN // HEADS
    torch.testing.assert_close(
        out[:, : 3 * width], make("mean")(x, MASK)[:, : 3 * width], atol=1e-5, rtol=1e-5
    )
    assert (out[:, 3 * width :] > make("mean")(x, MASK)[:, 3 * width :]).all()
    assert make("gem").p.shape == (1,)


def test_layer_selection_averages_the_chosen_layers():
    hidden = [torch.randn(2, 4, HIDDEN) for _ in range(LAYERS + 1)]
    chosen = make("mean", layers=[1, -1])(hidden, MASK)
    expected = make("mean")([(hidden[1] + hidden[-1]) / 2], MASK)
    torch.testing.assert_close(chosen, expected)
    assert make("mean", layers=[-1]).needs_all_layers is False
    assert make("mean", layers=[0]).needs_all_layers is True


def test_multi_layer_poolers_default_layers_and_selection():
    assert make("mltp").selected_layers == list(range(1, LAYERS + 1))
    assert make("mltp").layer_embedding.num_embeddings == LAYERS
    assert make("layerwise").selected_layers == list(range(LAYERS + 1))  # embeddings included
    assert make("mltp", layers=[-2, -1]).layer_embedding.num_embeddings == 2
    hidden = [torch.randn(2, 4, HIDDEN) for _ in range(LAYERS + 1)]
    pooler = make("mltp", layers=[-1])
    changed = list(hidden)
    changed[0] = torch.randn(2, 4, HIDDEN)
    assert torch.equal(pooler(hidden, MASK), pooler(changed, MASK))  # unselected layer ignored


def test_mltp_layer_vector_eos_reads_the_last_real_token():
    pooler = make("mltp", layer_vector="eos")
    hidden = [torch.randn(2, 4, HIDDEN) for _ in range(LAYERS + 1)]
    changed = [h.clone() for h in hidden]
    for h in changed:
        h[0, 1] += 5  # row 0 (right padded): token 1 is not its last real token (2)
    assert torch.equal(pooler(hidden, MASK)[0], pooler(changed, MASK)[0])
    assert not torch.equal(
        make("mltp", layer_vector="mean")(hidden, MASK)[0],
        make("mltp", layer_vector="mean")(changed, MASK)[0],
    )


def test_layerwise_matches_a_direct_computation():
    pooler = make("layerwise")
    hidden = [torch.randn(2, 4, HIDDEN) for _ in range(LAYERS + 1)]
    cls = torch.stack([torch.stack([h[0, 0], h[1, 1]]) for h in hidden], 1)
    means = torch.stack([make("mean")([h], MASK) for h in hidden], 1)
    q, k, v = pooler.query(cls), pooler.key(means), pooler.value(means)
    att = torch.softmax(q @ k.transpose(1, 2) / (LAYERS + 1), -1) @ v
    expected = torch.tanh(pooler.dense(torch.cat([cls[:, -1], att.mean(1)], -1)))
    torch.testing.assert_close(pooler(hidden, MASK), expected)
    assert all(layer[0].bias is None for layer in (pooler.query, pooler.key, pooler.value))


def test_latent_pooler_ignores_padding_tokens():
    pooler = make("latent")
    x = [torch.randn(1, 5, HIDDEN)]
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    y = [x[0].clone()]
    y[0][0, 3:] = 1e3
    assert torch.equal(pooler(x, mask), pooler(y, mask))


def test_sizes_follow_the_backbone():
    pooler = make("mltp")
    assert pooler.block.latents.shape[1] == HIDDEN and pooler.attn_heads == HEADS
    assert make("mltp", attn_heads=3).attn_heads == 2  # largest divisor of 32 that is <= 3


def test_validation_errors_are_clear():
    with pytest.raises(ValueError, match=r"unknown pooling 'avg'.*mean"):
        make("avg")
    with pytest.raises(TypeError, match="takes no option"):
        make("mean", num_latents=3)
    with pytest.raises(ValueError, match="out of range"):
        make("mean", layers=[7])
    with pytest.raises(ValueError, match="must divide"):
        make("gem", groups=5)
    with pytest.raises(ValueError, match="signed"):
        make("gem", signed="abs")
    with pytest.raises(ValueError, match="layer_vector"):
        make("mltp", layer_vector="cls")
    with pytest.raises(ValueError, match="no 'mode'"):
        pooler_from_config({"hidden_size": 3})


@pytest.mark.parametrize("mode", ALL_MODES)
def test_trainable_poolers_accept_states_of_another_dtype(mode):
    pooler = make(mode)  # float32 parameters over a bfloat16 backbone
    hidden = [torch.randn(2, 5, HIDDEN, dtype=torch.bfloat16) for _ in range(LAYERS + 1)]
    out = pooler(hidden, torch.ones(2, 5, dtype=torch.long))
    assert torch.isfinite(out).all()
