"""``pixelmind demo``: the shortest path from install to a trained model and its results."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pixelmind.errors import PixelmindError


def run_demo(task: str, project: str, epochs: int | None, console) -> Path:
    """Train the task's default model on built-in data, predict a few images, print where it all is."""
    from pixelmind.api import Model

    demos = {"classify": None, "segment": _segment_demo, "detect": _detect_demo, "enhance": _enhance_demo, "compress": _compress_demo,
             "generate": _generate_demo}  # fmt: skip
    if task not in demos:
        raise PixelmindError(f"demo: --task {task} has no demo yet (available: {', '.join(demos)})")
    if demos[task] is not None:
        return demos[task](project, epochs, console)
    console.print("[bold]pixelmind demo[/]: classify handwritten digits (scikit-learn's 1,797 8x8 images) on the CPU")
    model = Model("pm_cnn_s", task="classify")
    metrics = model.train(data="digits", epochs=epochs, project=project, name="demo", console=console)
    samples = Path(tempfile.mkdtemp(prefix="pixelmind-demo-"))
    paths = _sample_images(samples)
    out = model.run_dir / "predictions"
    rows = model.predict(paths, save_dir=out)
    console.print("\n[bold]predictions[/] on a few validation digits:")
    for path, row in zip(paths, rows):
        truth = path.stem.split("_")[-1]
        console.print(f"  {path.name}: predicted {row['label']} ({row['prob']:.1%}), true {truth}")
    console.print(f"\nval top-1 accuracy: [bold]{metrics['top1']:.2%}[/]")
    console.print(f"run directory: {model.run_dir}")
    console.print(f"  report:  {model.run_dir / 'report.md'}")
    console.print(f"  plots:   {model.run_dir / 'plots'}")
    console.print(f"  weights: {model.weights_path}")
    console.print(f"  annotated predictions: {out}")
    console.print(f"next: pixelmind predict --weights {model.weights_path} --source YOUR_IMAGE.png")
    return model.run_dir


def _sample_images(folder: Path, n: int = 6) -> list[Path]:
    """Write a few validation digits as PNG files, named with their true label."""
    from PIL import Image

    from pixelmind.config import TrainConfig
    from pixelmind.tasks.classify.data import load_classification_data

    val = load_classification_data(TrainConfig(data="digits", imgsz=8, augment="none")).val
    paths = []
    for i in range(0, len(val), max(1, len(val) // n))[:n]:
        arr = val.images[i, 0].numpy()
        path = folder / f"digit{i:03d}_{val.targets[i]}.png"
        Image.fromarray(arr).resize((64, 64), Image.Resampling.NEAREST).save(path)
        paths.append(path)
    return paths


def _enhance_demo(project: str, epochs: int | None, console) -> Path:
    """x2 super-resolution trained on scikit-image's bundled photos; compared with bicubic."""
    from pixelmind.api import Model

    console.print("[bold]pixelmind demo[/]: x2 super-resolution on scikit-image's bundled photos, on the CPU")
    model = Model("edsr_s", task="enhance")
    metrics = model.train(data="photos", degradation="sr", scale=2, epochs=epochs or 3, epoch_samples=400,
                          project=project, name="demo", console=console)  # fmt: skip
    out = model.run_dir / "enhanced"
    from pixelmind.data.builtin import photo_paths

    rows = list(model.enhance([p for p in photo_paths() if p.stem in ("chelsea", "coffee")], out))
    console.print(f"\nval PSNR (Y, x2): model [bold]{metrics['psnr']:.2f} dB[/] vs bicubic {metrics['baseline_psnr']:.2f} dB"
                  f" ({metrics['gain_db']:+.2f} dB); SSIM {metrics['ssim']:.4f} vs {metrics['baseline_ssim']:.4f}")  # fmt: skip
    console.print(f"run directory: {model.run_dir}")
    console.print(f"  report:  {model.run_dir / 'report.md'}")
    console.print(f"  plots:   {model.run_dir / 'plots'} (examples.png: input | bicubic | model | truth)")
    console.print(f"  weights: {model.weights_path}")
    console.print(f"  enhanced images (x2): {', '.join(r['saved'] for r in rows if 'saved' in r)}")
    console.print(f"next: pixelmind enhance --weights {model.weights_path} YOUR_IMAGE.png -o enhanced/")
    return model.run_dir


def _compress_demo(project: str, epochs: int | None, console) -> Path:
    """A small mean-scale hyperprior trained briefly on the bundled photos; real .pmc files, JPEG beside them."""
    from pixelmind.api import Model

    console.print("[bold]pixelmind demo[/]: learned image compression on scikit-image's bundled photos, on the CPU")
    console.print("(a few minutes of CPU training: the codec is far from converged; see bench/RESULTS.md for trained ones)")
    model = Model("mean_scale_s", task="compress")
    metrics = model.train(data="photos", quality=2, epochs=epochs or 3, epoch_samples=400, imgsz=128,
                          project=project, name="demo", console=console)  # fmt: skip
    from pixelmind.data.builtin import photo_paths

    files = model.run_dir / "compressed"
    sources = [p for p in photo_paths() if p.stem in ("chelsea", "coffee")]
    rows = list(model.compress(sources, files))
    decoded = list(model.decompress(files, model.run_dir / "decoded"))
    console.print(f"\nval: [bold]{metrics['bpp']:.3f} bpp[/] (real files), PSNR {metrics['psnr']:.2f} dB; at the same bpp "
                  f"JPEG gets {metrics.get('jpeg_psnr', float('nan')):.2f} dB, WebP {metrics.get('webp_psnr', float('nan')):.2f} dB")  # fmt: skip
    for row in rows:
        if "error" not in row:
            console.print(f"  {Path(row['source']).name}: {row['bytes']} bytes, {row['bpp']:.3f} bpp, PSNR {row['psnr']:.2f} dB")
    console.print(f"run directory: {model.run_dir}")
    console.print(f"  report:  {model.run_dir / 'report.md'}")
    console.print(f"  plots:   {model.run_dir / 'plots'} (rd_per_image.png: against JPEG/WebP/AVIF at matched bpp)")
    console.print(f"  weights: {model.weights_path}")
    console.print(f"  files:   {files} (.pmc), decoded PNGs in {model.run_dir / 'decoded'} ({len(decoded)} files)")
    console.print(f"next: pixelmind compress --weights {model.weights_path} YOUR_IMAGE.png -o out/  "
                  f"then  pixelmind decompress --weights {model.weights_path} out/*.pmc -o decoded/")  # fmt: skip
    return model.run_dir


def _segment_demo(project: str, epochs: int | None, console) -> Path:
    """A U-Net trained from scratch on the built-in shapes; masks and overlays of a few validation images."""
    from pixelmind.api import Model

    console.print("[bold]pixelmind demo[/]: segment circles, squares and triangles (built-in `shapes`, 64 px) on the CPU")
    model = Model("unet_s", task="segment")
    # 12 of the recipe's 35 epochs: a demo of a few minutes (the full recipe: mIoU 0.91, bench/RESULTS.md §10)
    metrics = model.train(data="shapes", epochs=epochs or 12, project=project, name="demo", console=console)
    paths = _shapes_val_images()
    out = model.run_dir / "predictions"
    rows = model.predict(paths, save_dir=out)
    console.print("\n[bold]predictions[/] (pixel share per class) on a few validation images:")
    for path, row in zip(paths, rows):
        console.print(f"  {path.name}: " + ", ".join(f"{k} {v:.1%}" for k, v in row["classes"].items()))
    console.print(f"\nval mIoU: [bold]{metrics['miou']:.3f}[/]  pixel accuracy {metrics['pixel_acc']:.3f}"
                  f"{'  (a short demo run; the default 35 epochs reach about 0.91)' if not epochs else ''}")
    _print_run(console, model, "plots", "overlays and index masks (*_mask.png)", out, "YOUR_IMAGE.png --save")
    return model.run_dir


def _detect_demo(project: str, epochs: int | None, console) -> Path:
    """The default detector trained from scratch on the built-in shapes; boxes drawn on a few validation images."""
    from pixelmind.api import Model

    console.print("[bold]pixelmind demo[/]: detect circles, squares and triangles (built-in `shapes`, 64 px) on the CPU")
    model = Model("pmdet_s", task="detect")
    # 8 of the recipe's 18 epochs: a demo of a few minutes (the full recipe: bench/RESULTS.md, detection on shapes)
    metrics = model.train(data="shapes", epochs=epochs or 8, project=project, name="demo", console=console)
    paths = _shapes_val_images()
    out = model.run_dir / "predictions"
    rows = model.predict(paths, save_dir=out)
    console.print("\n[bold]detections[/] (score >= 0.25) on a few validation images:")
    for path, row in zip(paths, rows):
        found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in row["detections"]) or "nothing"
        console.print(f"  {path.name}: {found}")
    console.print(f"\nval mAP50: [bold]{metrics['map50']:.3f}[/]  mAP50-95 {metrics['map']:.3f}"
                  f"{'  (a short demo run; the default 18 epochs train longer)' if not epochs else ''}")
    _print_run(console, model, "plots (PR curves, confusion matrix)", "annotated images and YOLO txt", out, "YOUR_IMAGE.jpg --save")
    return model.run_dir


def _generate_demo(project: str, epochs: int | None, console) -> Path:
    """A small class-conditional GAN trained on the built-in digits; a grid per class and a latent interpolation."""
    from pixelmind.api import Model

    console.print("[bold]pixelmind demo[/]: a class-conditional GAN on handwritten digits (scikit-learn's 8x8, shown at 28 px), on the CPU")
    console.print("(a few minutes of CPU training: rough but per-class digits; more epochs sharpen them)")
    # narrower than the default GAN (width 16): less compute per step, so minutes of CPU give more steps
    model = Model("gan", task="generate")
    model.train(data="digits", epochs=epochs or 25, project=project, name="demo", console=console,
                model_kwargs={"width": 16, "latent_dim": 32})  # fmt: skip
    written = model.generate_to(model.run_dir / "generated", n=40, seed=0)
    strips = model.generate_to(model.run_dir / "interpolation", n=4, seed=0, interpolate=8)
    grids = sorted((model.run_dir / "samples").glob("epoch_*.png"))
    console.print(f"\nrun directory: {model.run_dir}")
    console.print(f"  samples after each epoch (one row per class): {model.run_dir / 'samples'} (last: {grids[-1].name if grids else '-'})")
    console.print(f"  40 new digits (one column per class): {written['grid']}, one PNG each beside it")
    console.print(f"  latent interpolation (4 rows of 8 frames): {strips['grid']}")
    console.print(f"  weights: {model.weights_path}")
    console.print("  FID/KID: train with --feature-weights (a digits classifier's weights, e.g. from `pixelmind demo`) to measure them")
    console.print(f"next: pixelmind generate --weights {model.weights_path} --n 16 --class 7 --seed 1 -o sevens/")
    return model.run_dir


def _shapes_val_images(n: int = 4) -> list[Path]:
    """The first ``n`` validation images of the built-in shapes, written as PNGs to a temporary folder."""
    from PIL import Image

    from pixelmind.data.shapes import shapes_indices, shapes_sample

    folder = Path(tempfile.mkdtemp(prefix="pixelmind-demo-"))
    paths = []
    for i in shapes_indices("val")[:n]:
        path = folder / f"shapes_{i}.png"
        Image.fromarray(shapes_sample(i, size=64).image).save(path)
        paths.append(path)
    return paths


def _print_run(console, model, plots: str, outputs: str, out: Path, source: str) -> None:
    """Where the run's report, plots, weights and predictions are, and the next command to try."""
    console.print(f"run directory: {model.run_dir}")
    console.print(f"  report:  {model.run_dir / 'report.md'}")
    console.print(f"  {plots}: {model.run_dir / 'plots'}")
    console.print(f"  weights: {model.weights_path}")
    console.print(f"  {outputs}: {out}")
    console.print(f"next: pixelmind predict --weights {model.weights_path} --source {source}")
