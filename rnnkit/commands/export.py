"""``rnnkit export RUN --format onnx|torch [--out PATH]``: a trained run's model for other runtimes."""
from __future__ import annotations

from pathlib import Path

from rnnkit.commands import options as O
from rnnkit.commands.interrupt import guarded

DEFAULT_NAMES = {"onnx": "onnx/model.onnx", "torch": "torch/model.safetensors"}  # under RUN/export/


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a trained model to ONNX or to PyTorch-named safetensors",
        description="Export the model of a run folder (rnnkit text train, forecast train, classify train, "
                    "memory run) as ONNX graphs run by onnxruntime (needs: pip install 'rnnkit[onnx]'), or as "
                    "safetensors under PyTorch's parameter names. A JSON file beside the output describes "
                    "inputs, outputs, vocabulary, classes or scalers.")
    p.add_argument("run", help="run folder or checkpoint file")
    p.add_argument("--format", choices=sorted(DEFAULT_NAMES), default="onnx", help="onnx (default) or torch")
    p.add_argument("--out", type=O.file_path, help="output file (default RUN/export/onnx/model.onnx or "
                                 "RUN/export/torch/model.safetensors)")
    p.add_argument("--no-refit", action="store_true",
                   help="forecast runs: export the model evaluated on the test span, not the one refitted on all "
                        "the data (default: the refitted one, as forecast predict uses)")
    p.set_defaults(func=run)


@guarded  # a run folder being trained or exported elsewhere is refused
def run(args, locks) -> int:
    from rnnkit.export.runs import checkpoint_of, load_run

    if args.format == "onnx":
        from rnnkit.export.graph import require_onnx

        require_onnx()  # before loading anything: a missing extra is the first thing to say
    run_path = Path(args.run)
    if args.out:
        out = Path(args.out)
    else:
        base = run_path if run_path.is_dir() else run_path.parent
        out = base / "export" / DEFAULT_NAMES[args.format]
    if run_path.is_dir():
        locks.hold(run_path, optional=True)  # a read-only run folder can still be exported elsewhere
    model = load_run(run_path, refit=not args.no_refit)
    if args.format == "onnx":
        from rnnkit.export.onnx import to_onnx

        written = to_onnx(model, out)
    else:
        from rnnkit.export.torch import to_torch

        written = to_torch(model, out)
    print(f"exported {type(model).__name__} from {checkpoint_of(run_path, not args.no_refit)} ({args.format}):")
    for path in written:
        print(f"  {path}")
    return 0
