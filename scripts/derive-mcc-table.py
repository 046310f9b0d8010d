#!/usr/bin/env python3
"""Derives data/mcc-mnc.csv from the licensed MCC/MNC table (musalbas/mcc-mnc-table,
commit 45b06a1, MIT): one row per distinct (mcc, mnc, country), ISO upper case, with the
E.164 calling code. Rows without an ISO country (international/satellite networks) are
dropped. Usage: scripts/derive-mcc-table.py SOURCE.csv > data/mcc-mnc.csv"""
import csv
import sys

source = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mcc-mnc/mcc-mnc-table.csv"
rows = set()
with open(source, newline="", encoding="utf-8") as f:
    for r in csv.DictReader(f):
        iso = r["ISO"].strip().upper()
        mcc, mnc, code = r["MCC"].strip(), r["MNC"].strip(), r["Country Code"].strip()
        if len(iso) != 2 or not iso.isalpha() or not mcc.isdigit() or not mnc.isdigit():
            continue
        if code and not code.isdigit():
            code = ""
        rows.add((mcc, mnc, iso, code))
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["mcc", "mnc", "iso", "calling_code"])
for row in sorted(rows):
    out.writerow(row)
