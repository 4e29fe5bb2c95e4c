"""Explain REG4Rec recommendations from a saved checkpoint.

    python explain.py --model_file saved/REG4Rec-Nov-26-2026_03-00-00.pth --users 1 42 --topk 5
    python explain.py --model_file ... --users 1 --json > explanation.json

For every user: the top-K items, the reasoning path that reached each one (codebook order,
token per step, CRSS confidence, log-probability, reflection score), how many candidates CORP
pruned or merged, and a description of every token from the items that share it.
"""

import argparse
import json
import sys

import recbole_reg4rec  # noqa: F401  (compatibility layer + model registration)
from recbole_reg4rec.explain import explain_users, format_explanations, to_dicts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_file", required=True, help="REG4Rec checkpoint (.pth)")
    parser.add_argument("--users", nargs="+", required=True, help="external user ids")
    parser.add_argument("--topk", type=int, default=10, help="items per user")
    parser.add_argument("--split", choices=("test", "valid"), default="test", help="which history to use")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv
    try:
        explanations = explain_users(args.model_file, args.users, topk=args.topk, split=args.split)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(to_dicts(explanations), indent=1) if args.json else format_explanations(explanations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
