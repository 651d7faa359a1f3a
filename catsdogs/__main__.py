"""Command line: ``python -m catsdogs {run,predict,validate}`` (the maintainer's commands are scripts:
``scripts/set_repository.py``, ``scripts/export_weights.py``)."""
from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catsdogs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the numbered notebooks headless, in order (the whole pipeline)")
    run.add_argument("--archive", type=Path, help="a Kaggle-layout competition zip to use (default: data/ or download)")
    run.add_argument("--profile", choices=["full", "small"], help="small: demo archive, one short epoch")
    run.add_argument("--only", nargs="*", help="notebook numbers to run, e.g. 01 02")
    run.add_argument("--inplace", action="store_true", help="write outputs into the notebooks themselves")
    run.add_argument("--out-dir", type=Path, help="where executed notebooks go (default data/runs/<profile>)")
    run.add_argument("--notebook-dir", type=Path, help="folder of the numbered notebooks (default notebooks/)")
    run.add_argument("--recipe", help="a parameter file of notebooks/params/ by name, e.g. blog: notebook 04 trains "
                     "the blog's recipe (blog.yaml); notebook 05 predicts with the run trained last")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="override a value of the notebooks' parameters cells, e.g. -p epochs=3 (repeatable)")

    predict = sub.add_parser("predict", help="write id,label (P(dog)) for every picture in a folder")
    predict.add_argument("images_dir", type=Path)
    predict.add_argument("--out", type=Path, required=True)
    predict.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    predict.add_argument("--no-tta", action="store_true", help="no horizontal-flip test-time augmentation")
    predict.add_argument("--clip", type=float, default=0.0, help="bound P(dog) to [clip, 1-clip]")
    predict.add_argument("--crop", type=float, nargs="+", help="centre crop kept, as a fraction of each side; "
                         "several: the mean over them (default: the whole photo, the crop matched to the "
                         "checkpoint's training crops and three more, averaged; 1 = the whole photo only)")

    validate = sub.add_parser("validate", help="check a submission CSV")
    validate.add_argument("csv", type=Path)
    validate.add_argument("--sample", type=Path, help="sample_submission.csv whose ids must all be present")

    args = parser.parse_args(argv)
    from .archives import DatasetError
    from .validate import InvalidSubmission, validate_submission

    try:
        if args.command == "run":
            if args.profile:
                os.environ["CATSDOGS_PROFILE"] = args.profile
            if args.archive:
                os.environ["CATSDOGS_ARCHIVE"] = str(args.archive.resolve())
            from .run import NotebookFailed, parse_parameter, run_notebooks

            parameters = dict(parse_parameter(text) for text in args.parameter)
            try:
                run_notebooks(args.only, args.out_dir, inplace=args.inplace, parameters=parameters, recipe=args.recipe,
                              **({"folder": args.notebook_dir} if args.notebook_dir else {}))
            except NotebookFailed:  # already reported in one line and in the summary: no traceback
                return 1
        elif args.command == "predict":
            from .predict import predict_folder

            out = predict_folder(args.images_dir, args.out, args.checkpoint, flip=not args.no_tta, clip=args.clip,
                                 crops=tuple(args.crop) if args.crop else None)
            print(f"wrote {out}")
        elif args.command == "validate":
            ids = None
            if args.sample:
                with open(args.sample, newline="") as f:
                    ids = [row["id"] for row in csv.DictReader(f)]
            print(f"{args.csv}: {validate_submission(args.csv, ids)} rows, valid")
    except (DatasetError, InvalidSubmission, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
