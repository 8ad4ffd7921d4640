"""Sampling throughput (images/s) of the generate task's models: the GAN, and DDIM at 25 and 50 steps.

Class-conditional models for 28 px grey images (Fashion-MNIST's shape), batch 64, untrained
weights (the cost of sampling does not depend on what the weights are). DDIM runs with
classifier-free guidance 2.0 (one batched forward pass of 2 x 64 per step) and without (1.0).
Baselines, measured in the same run with the same network:

* diffusers' ``DDIMScheduler`` driving the same net for 50 steps (our loop should cost the same:
  the network is the whole cost);
* the 1000-step DDPM ancestral sampler (diffusers' ``DDPMScheduler``) that DDIM replaces; timed
  on ``--ancestral-steps`` steps and extrapolated to 1000, as its per-step cost is constant.

    python bench/generate_sampling.py [--threads N] [--batch 64] [--ddpm-kwargs '{"width": 16}']
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import machine

from pixelmind.tasks.generate.models import build_generator


def images_per_s(fn, n: int, repeat: int, warmup=None) -> float:
    (warmup or fn)()  # warm-up: allocator and oneDNN primitives (a 1-step run is enough for a sampler)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per figure (the best is kept)")
    ap.add_argument("--ancestral-steps", type=int, default=20, help="DDPM steps timed for the 1000-step baseline")
    ap.add_argument("--ddpm-kwargs", default="{}", help="JSON kwargs of the ddpm builder (default: the registered default)")
    ap.add_argument("--gan-kwargs", default="{}", help="JSON kwargs of the gan builder")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import DDIMScheduler, DDPMScheduler

    n, size = args.batch, args.size
    labels = torch.arange(n) % 10
    torch.manual_seed(0)
    gan = build_generator("gan", size, 1, 10, **json.loads(args.gan_kwargs)).eval()
    ddpm = build_generator("ddpm", size, 1, 10, **json.loads(args.ddpm_kwargs)).eval()
    noise = torch.randn(ddpm.noise_shape(n), generator=torch.Generator().manual_seed(0))
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    print(f"machine: {machine()}")
    print(f"models: gan {params(gan):.2f}M params, ddpm {params(ddpm):.2f}M params ({args.ddpm_kwargs}); batch {n}, {size} px, 1 channel, 10 classes")

    rows = [("GAN (one generator pass)", images_per_s(lambda: gan.sample(n, labels), n, args.repeat))]
    for steps in (25, 50):
        for g in (2.0, 1.0):
            ips = images_per_s(lambda s=steps, g=g: ddpm.sample(n, labels, noise=noise, steps=s, guidance=g), n, args.repeat,
                               lambda g=g: ddpm.sample(n, labels, noise=noise, steps=1, guidance=g))  # fmt: skip
            rows.append((f"DDIM {steps} steps, guidance {g}", ips))

    def diffusers_ddim() -> torch.Tensor:
        sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                              clip_sample=True, timestep_spacing="trailing")  # fmt: skip
        sched.set_timesteps(50)
        x = noise.clone()
        for t in sched.timesteps:
            x = sched.step(ddpm(x, torch.full((n,), int(t)), labels), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
        return x

    rows.append(("baseline: diffusers DDIMScheduler, 50 steps, guidance 1.0, same net",
                 images_per_s(diffusers_ddim, n, args.repeat, lambda: ddpm(noise, torch.full((n,), 999), labels))))  # fmt: skip

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    sched.set_timesteps(1000)
    x = noise.clone()
    k = args.ancestral_steps
    ddpm(x, torch.full((n,), 999), labels)  # warm-up
    t0 = time.perf_counter()
    for t in sched.timesteps[:k]:
        x = sched.step(ddpm(x, torch.full((n,), int(t)), labels), t, x, generator=torch.Generator().manual_seed(int(t))).prev_sample
    per_step = (time.perf_counter() - t0) / k
    ancestral = n / (per_step * 1000)
    rows.append((f"baseline: DDPM ancestral, 1000 steps, guidance 1.0 (extrapolated from {k} timed steps)", ancestral))

    width = max(len(r[0]) for r in rows)
    for name, ips in rows:
        print(f"{name:<{width}}  {ips:9.2f} images/s  ({ips / ancestral:6.1f}x the 1000-step DDPM sampler)")


if __name__ == "__main__":
    main()
