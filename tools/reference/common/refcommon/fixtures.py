"""Fixture-generation scaffolding shared by the reference generators: paths, JSON writing, the node
helpers (tokenize.mjs / render_template.mjs in tools/reference/common/), self-check printing, the seeded
weight generator and the random shapes drawn on the test images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import torch

COMMON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tools/reference/common
REFERENCE_DIR = os.path.dirname(COMMON_DIR)                                 # tools/reference
REPO = os.path.dirname(os.path.dirname(REFERENCE_DIR))
FIXTURES = os.path.join(REPO, 'tests', 'GenRecal.Tests', 'Fixtures')


def fixtures_dir(*parts):
    """tests/GenRecal.Tests/Fixtures/<parts...> (absolute)."""
    return os.path.join(FIXTURES, *parts)


# ---------------------------------------------------------------------------
# node: tokenizers.js + @huggingface/jinja, installed once with `npm ci` in tools/reference/common
# ---------------------------------------------------------------------------

def require_node_modules():
    for pkg in ('tokenizers', 'jinja'):
        if not os.path.isdir(os.path.join(COMMON_DIR, 'node_modules', '@huggingface', pkg)):
            sys.exit('run `npm ci` in ' + COMMON_DIR + ' first')


def run_node(script, first_arg, requests):
    """node tools/reference/common/<script> <first_arg> <requests.json> <out.json>; returns the parsed out.json."""
    with tempfile.TemporaryDirectory() as td:
        rq = os.path.join(td, 'rq.json')
        out = os.path.join(td, 'out.json')
        with open(rq, 'w', encoding='utf-8') as f:
            json.dump(requests, f, ensure_ascii=False)
        subprocess.run(['node', os.path.join(COMMON_DIR, script), first_arg, rq, out], check=True, cwd=COMMON_DIR)
        with open(out, encoding='utf-8') as f:
            return json.load(f)


def run_tokjs(tok_dir, requests):
    """tokenize.mjs: encode / decode / token_to_id with tokenizers.js, apply_chat_template with @huggingface/jinja."""
    return run_node('tokenize.mjs', tok_dir, requests)


def render_jinja(template_json_path, requests):
    """render_template.mjs: render the "chat_template" of a chat_template.json with @huggingface/jinja."""
    return run_node('render_template.mjs', template_json_path, requests)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def write_json(path, obj, sort_keys=False):
    """UTF-8, ensure_ascii=False, indent 2, trailing newline, LF line ends."""
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=sort_keys)
        f.write('\n')


def write_files(d, files, sort_keys_for=()):
    """Write {filename: str or json-able} into d (created if needed); JSON files named in sort_keys_for
    are written with sort_keys=True."""
    os.makedirs(d, exist_ok=True)
    for name, content in files.items():
        p = os.path.join(d, name)
        if isinstance(content, str):
            with open(p, 'w', encoding='utf-8', newline='\n') as f:
                f.write(content)
        else:
            write_json(p, content, sort_keys=name in sort_keys_for)


def total_size(root):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(root) for f in fs)


# ---------------------------------------------------------------------------
# Self-checks, weights, images
# ---------------------------------------------------------------------------

def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print('  ok:', msg)


def margins(step_logits):
    """Top-1 minus top-2 logit at every greedy step (list of floats)."""
    top = step_logits.topk(2, dim=-1).values
    return (top[:, 0] - top[:, 1]).tolist()


def rounded_margins(step_logits, ndigits=6):
    return [round(x, ndigits) for x in margins(step_logits)]


class Gen:
    """Seeded weight generator (torch.Generator): n = normal(mean, std), u = uniform[lo, hi)."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def n(self, shape, std, mean=0.0):
        return (torch.randn(*shape, generator=self.g) * std + mean).float()

    def u(self, shape, lo, hi):
        return (torch.rand(*shape, generator=self.g) * (hi - lo) + lo).float()


def draw_random_shapes(img, rng, n_shapes, n_lines=4):
    """Draw n_shapes random filled rectangles / outlined ellipses and n_lines random 2-px lines on img
    (PIL RGB) with a numpy RandomState; the call order of rng is part of the fixture."""
    from PIL import ImageDraw
    W, H = img.size
    d = ImageDraw.Draw(img)
    for _ in range(n_shapes):
        x0, y0 = int(rng.randint(0, W - 20)), int(rng.randint(0, H - 15))
        x1, y1 = x0 + int(rng.randint(10, 60)), y0 + int(rng.randint(8, 40))
        col = tuple(int(c) for c in rng.randint(0, 256, 3))
        if rng.rand() < 0.5:
            d.rectangle([x0, y0, x1, y1], fill=col)
        else:
            d.ellipse([x0, y0, x1, y1], fill=col, outline=(0, 0, 0))
    for _ in range(n_lines):
        pts = [int(v) for v in (rng.randint(0, W), rng.randint(0, H), rng.randint(0, W), rng.randint(0, H))]
        d.line(pts, fill=tuple(int(c) for c in rng.randint(0, 256, 3)), width=2)
