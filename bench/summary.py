#!/usr/bin/env python3
"""summary.py: the end of bench/rtm-bench.sh. Reads one JSON line per run
(rtm bench's result line plus "workload") and prints, per workload, the
median of each figure for each server, the ratio rtmd/raw, and the CPU of
the server and of the generator. Figures only: the goals are printed beside
them for reading, never checked."""
import json
import statistics
import sys

# workload -> (figure, unit, goal as text)
FIGURES = {
    'pairs-paced': [('p50_ms', 'ms', 'p50 within 1.2 x raw'), ('p99_ms', 'ms', 'p99 < 1 ms')],
    'pairs-paced-idle': [('p50_ms', 'ms', 'p50 within 1.2 x raw'), ('p99_ms', 'ms', 'p99 < 1 ms')],
    'connect': [('connects_per_sec', '/s', '>= 15,000/s'), ('broker_bytes_per_conn', 'B', '<= 4,096 B')],
    'fanout-1000': [('deliveries_per_sec', '/s', '>= 0.8 x raw'), ('p50_ms', 'ms', '')],
    'fanout-5000': [('deliveries_per_sec', '/s', '>= 0.8 x raw'), ('p50_ms', 'ms', '')],
    'pairs': [('exchanges_per_sec', '/s', ''), ('p50_ms', 'ms', '(round trip)')],
}
CPU = [('broker_cpu_pct', 'server CPU %'), ('generator_cpu_pct', 'generator CPU %'),
       ('broker_cpu_us_per_event', 'server CPU us/event'), ('generator_cpu_us_per_event', 'generator CPU us/event')]


def med(runs, key):
    v = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(v) if v else None


def fmt(x):
    if x is None:
        return '-'
    if abs(x) >= 1000:
        return f'{x:,.0f}'
    if abs(x) >= 10:
        return f'{x:.1f}'
    return f'{x:.3f}'


def main():
    runs = {}
    for line in open(sys.argv[1]):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        runs.setdefault((r['workload'], r.get('server', 'rtmd')), []).append(r)
    print(f"{'workload':<17} {'figure':<26} {'rtmd':>11} {'raw':>11} {'rtmd/raw':>9}  goal")
    for w, figs in FIGURES.items():
        d, r = runs.get((w, 'rtmd'), []), runs.get((w, 'raw'), [])
        if not d and not r:
            continue
        n = f"{len(d)}+{len(r)} runs"
        for key, unit, goal in figs + [(k, '', '') for k, _ in CPU]:
            a, b = med(d, key), med(r, key)
            if a is None and b is None:
                continue
            label = dict(CPU).get(key, f'{key} ({unit})')
            ratio = f'{a / b:.2f}' if a is not None and b else '-'
            print(f'{w:<17} {label:<26} {fmt(a):>11} {fmt(b):>11} {ratio:>9}  {goal}')
            w = ''
        for name, runs_ in (('rtmd', d), ('raw', r)):
            su, gu = med(runs_, 'broker_cpu_us_per_event'), med(runs_, 'generator_cpu_us_per_event')
            gp = med(runs_, 'generator_cpu_pct')
            if su is None or gu is None:
                continue
            # the side that costs more per event reaches its core's limit first
            if gp is not None and gp >= 90:
                note = 'generator-bound (generator at %.0f %% of its core)' % gp
            elif su >= 1.25 * gu:
                note = 'server-bound (server costs %.1fx the generator per event)' % (su / gu)
            else:
                note = 'server and generator cost about the same per event: both cores bound it'
            print(f"{'':<17} {name}: {note}")
        lost = sum(x.get('lost', 0) or 0 for x in d + r)
        disc = sum(x.get('disconnects', 0) or 0 for x in d + r)
        print(f"{'':<17} ({n}; lost {lost}, disconnects {disc})")


main()
