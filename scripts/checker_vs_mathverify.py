"""Agreement of Math-Verify with the labels of core/tests/data/checker_labelled.tsv, per category.

Run through scripts/checker-vs-mathverify.sh (a venv with math-verify); Math-Verify is only a
yardstick here, never a dependency of the checker.
"""
import collections
import sys

from math_verify import parse, verify


def main(path):
    per = collections.defaultdict(lambda: [0, 0])
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        cat, label, ref, pred = line.rstrip("\n").split("\t")
        try:
            gold = parse(f"${ref}$")
            answer = parse(f"\\boxed{{{pred}}}")
            ok = bool(verify(gold, answer))
        except Exception:  # noqa: BLE001 - any failure is a "not equal"
            ok = False
        per[cat][0] += 1
        per[cat][1] += ok == (label == "1")
    total = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
    for cat, (n, agree) in sorted(per.items()):
        print(f"{cat:<20} {n:>6} {agree:>6} {100 * agree / n:8.2f}%")
    print(f"{'overall':<20} {total[0]:>6} {total[1]:>6} {100 * total[1] / total[0]:8.2f}%")


if __name__ == "__main__":
    main(sys.argv[1])
