#!/bin/sh
# The missing-piece boundary in `seedbox sim`: 1 MiB from a 1 Mbit/s origin (0.119 files/s,
# 7.15/min), 384 kbit/s up / 1.5 Mbit/s down peers, Poisson arrivals for 20 minutes at
# multiples of the seed's rate in files per second, 4 pieces (256 KiB) and 64 (16 KiB),
# linger 0 and 30 s. One line per run: the p95, the biggest club and the warning if any.
# SLOTS: the origin's --unchoke-slots (4, the default when the table was first made; the
# simulator's default is now `seed`'s, auto).
B=${SEEDBOX:-seedbox}
SLOTS=${SLOTS:-4}
for pl in 262144 16384; do for linger in 0 30s; do for x in 0.5 2 4 8 16; do
  rate=$(echo "$x * 7.1526" | bc -l | xargs printf %.2f)
  out=$(timeout 300 $B sim -q --json --size 1048576 --piece-length $pl --unit piece --unchoke-slots $SLOTS --linger $linger --arrivals "$rate/min for 20m" 2>&1)
  echo "$out" | python3 -c "
import json,sys
r=json.load(sys.stdin); p=r['phases'][0]; w=r.get('warnings',[])
print('pieces=%d linger=%s x=%s rate/min=%s p95_s=%s mean_s=%s unfinished=%d end_s=%.0f warning=%s' % (r['units'], '$linger', '$x', '$rate', p['p95_s'], p['mean_s'], r['unfinished'], r['end_s'], ('club %d of %d at %.0f s' % (w[0]['club'], w[0]['leechers'], w[0]['t_s'])) if w else 'none'))" || echo "pieces-len=$pl linger=$linger x=$x: failed or timed out"
done; done; done
