#!/usr/bin/env python3
"""Derive data/mcc-mnc.csv from musalbas/mcc-mnc-table (commit 45b06a1, MIT).

Usage: scripts/derive-mcc-table.py SOURCE.csv [OUTPUT.csv]
       (OUTPUT defaults to data/mcc-mnc.csv beside this script's repository)

Output: header `mcc,mnc,iso,calling_code,operator`, then one row per distinct
network (mcc, mnc, country), sorted, ISO upper case. MCC and MNC keep their
digits as written ("01" and "001" are different networks); the source's
"MCC (int)" and "MNC (int)" columns are ignored: they are the digits read as
hexadecimal (289 -> 649), not the numbers. `operator` is the source's
`Network`, trimmed, empty when the source has none.

Normalisation, and what is deliberately kept as in the source:
- rows without a country (ISO "n/a": MCC 901, international/satellite) are
  dropped: they cannot name a country;
- the calling code loses separators ("1-671" -> "1671"); anything else that is
  not 1-4 digits stops the script instead of being guessed at;
- an empty calling code stays empty (the network is still known by MCC/MNC,
  numbers just cannot resolve to it);
- Russia's code is listed as "79", not "7", and is kept: OTP receivers are
  mobiles, Russian mobiles are +7 9..., Kazakh ones +7 7..., so "79" resolves
  both right, where "7" would send every Kazakh number to Russia;
- "AN" (Netherlands Antilles, withdrawn from ISO 3166-1 in 2010) is kept: the
  source does not say which successor (CW, SX, BQ) each network belongs to;
- a network the source lists under several operator names (a merger, a
  rebrand, or the catch-all MNC 299 that names many small operators) keeps
  the first non-empty name in the source's order: deterministic, and the
  rows stay one per network, so the majorities src/geo.rs computes from
  row counts do not change;
- an operator name containing a comma, a quote or a line break stops the
  script: the output is parsed by splitting on commas, without quoting.
A summary of these and of other oddities goes to stderr.
"""
import collections
import csv
import hashlib
import pathlib
import re
import sys

HEADER = ["mcc", "mnc", "iso", "calling_code", "operator"]
EXPECTED_SOURCE_COLUMNS = ["MCC", "MCC (int)", "MNC", "MNC (int)", "ISO", "Country", "Country Code", "Network"]


def fail(msg):
    sys.exit(f"derive-mcc-table: {msg}")


def calling_code(raw, line):
    code = re.sub(r"[\s\-]", "", raw)
    if code == "" or re.fullmatch(r"[1-9][0-9]{0,3}", code):
        return code
    fail(f"line {line}: unexpected calling code {raw!r}; extend the normalisation")


def operator_name(raw, line):
    name = raw.strip()
    if re.search(r'[,"\r\n]', name):
        fail(f"line {line}: operator name {raw!r} needs CSV quoting; the readers split on commas")
    return name


def main(argv):
    if len(argv) not in (2, 3):
        fail(__doc__.strip().splitlines()[2])
    source = pathlib.Path(argv[1])
    output = pathlib.Path(argv[2]) if len(argv) == 3 else pathlib.Path(__file__).resolve().parent.parent / "data" / "mcc-mnc.csv"
    raw = source.read_bytes()
    # (mcc, mnc, iso, calling code) -> operator names in the source's order.
    networks = {}
    dropped = collections.Counter()
    source_rows = 0
    with source.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != EXPECTED_SOURCE_COLUMNS:
            fail(f"unexpected columns {reader.fieldnames}")
        for line, r in enumerate(reader, start=2):
            source_rows += 1
            mcc, mnc, iso = r["MCC"].strip(), r["MNC"].strip(), r["ISO"].strip().upper()
            if not re.fullmatch(r"[A-Z]{2}", iso):
                dropped[f"no country (ISO {r['ISO']!r}, {r['Country']})"] += 1
                continue
            if not re.fullmatch(r"[0-9]{3}", mcc) or not re.fullmatch(r"[0-9]{2,3}", mnc):
                fail(f"line {line}: malformed MCC/MNC {mcc!r}/{mnc!r}")
            name = operator_name(r["Network"], line)
            names = networks.setdefault((mcc, mnc, iso, calling_code(r["Country Code"], line)), [])
            if name and name not in names:
                names.append(name)

    # One country has one calling code per network: two codes for the same
    # (mcc, mnc, iso) would make the row set ambiguous.
    keys = collections.Counter(n[:3] for n in networks)
    if any(c > 1 for c in keys.values()):
        fail(f"networks with several calling codes: {[k for k, c in keys.items() if c > 1]}")

    rows = sorted(key + ((names[0] if names else ""),) for key, names in networks.items())
    with output.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(HEADER)
        out.writerows(rows)

    log = lambda *a: print(*a, file=sys.stderr)
    log(f"source {source} sha256 {hashlib.sha256(raw).hexdigest()}: {source_rows} rows")
    log(f"wrote {output}: {len(rows)} networks, {len({r[0] for r in rows})} MCCs, "
        f"{source_rows - sum(dropped.values()) - len(rows)} duplicate rows merged")
    for why, n in sorted(dropped.items()):
        log(f"dropped {n} rows: {why}")
    several = {k: n for k, n in networks.items() if len(n) > 1}
    log(f"{len(several)} networks have several operator names (first kept), "
        f"{sum(1 for n in networks.values() if not n)} none (empty)")
    for (mcc, mnc, iso, _), names in sorted(several.items()):
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        log(f"  {mcc}/{mnc} {iso}: {shown} -> {names[0]}")
    no_code = sorted({r[2] for r in rows if not r[3]})
    log(f"countries with networks lacking a calling code: {' '.join(no_code)}")

    def shared(key_of, what):
        by_key = collections.defaultdict(collections.Counter)
        for r in rows:
            if key_of(r):
                by_key[key_of(r)][r[2]] += 1
        for key, countries in sorted(by_key.items()):
            if len(countries) > 1:
                ranked = sorted(countries.items(), key=lambda kv: (-kv[1], kv[0]))
                tie = " (tie, alphabetical)" if ranked[0][1] == ranked[1][1] else ""
                log(f"{what} {key} shared: {dict(ranked)} -> {ranked[0][0]}{tie}")

    shared(lambda r: r[0], "MCC")
    shared(lambda r: r[3], "calling code")
    by_int = collections.defaultdict(list)
    for mcc, mnc, iso, _, name in rows:
        by_int[(mcc, int(mnc))].append((mnc, iso, name))
    for (mcc, mnc), nets in sorted(by_int.items()):
        if len({iso for _, iso, _ in nets}) > 1:
            log(f"MNC {mcc}/{mnc} as an integer is ambiguous: {sorted(n[:2] for n in nets)} -> MCC majority")
        if len(nets) > 1:
            # src/geo.rs names the operator (and the MNC label) by the first such row.
            log(f"MNC {mcc}/{mnc} as an integer is {len(nets)} rows: operator and MNC of the first, "
                f"{nets[0][0]} {nets[0][2]!r}, over {[n[0] + ' ' + repr(n[2]) for n in nets[1:]]}")


if __name__ == "__main__":
    main(sys.argv)
