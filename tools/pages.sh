#!/bin/sh
# make sizes (and so make lint): the pages' budgets (issue 90). The README, a
# user's first page, at most 250 lines and 1,500 words; it and every page under
# docs/ (docs/development/ too) at most 40,000 words, counted as wc -w counts
# them. A page that grows past them is cut (a figure lives in one place), never
# the budget raised. Run from the repository's root; exit 1 when over one.
set -eu
readme_lines=$(wc -l < README.md)
readme_words=$(wc -w < README.md)
# shellcheck disable=SC2046 # (page names without blanks)
pages_words=$(cat README.md $(find docs -name '*.md' | sort) | wc -w)
echo "== over the pages' budgets: README.md over 250 lines or 1,500 words, README.md and docs/ over 40,000 words"
over=""
[ "$readme_lines" -le 250 ] || over="$over  README.md: $readme_lines lines (at most 250)
"
[ "$readme_words" -le 1500 ] || over="$over  README.md: $readme_words words (at most 1,500)
"
[ "$pages_words" -le 40000 ] || over="$over  README.md and docs/: $pages_words words (at most 40,000)
"
if [ -n "$over" ]; then
  printf '%s' "$over"
  exit 1
fi
echo "  no page: README.md $readme_lines lines, $readme_words words; with docs/ $pages_words words"
