// The lease-expiry check with planted early and late expiries.

import t from 'tap';
import { checkLeaseExpiry, type LeaseRecord } from './lease';

const opts = { toleranceMs: 500, slackMs: 4000, disruptions: [] };

// Granted at 1000 (TTL 3 s), renewed at 2000 and 3000 (answered 50 ms later), then left to lapse: it must live until
// 3000 + 3000 = 6000 and be gone by 3050 + 3000 + 4000 = 10050.
const lease = (observations: LeaseRecord['observations'], keepAlives?: LeaseRecord['keepAlives']): LeaseRecord => ({
  id: '7',
  ttlMs: 3000,
  grantCall: 1000,
  grantRet: 1050,
  keepAlives: keepAlives ?? [{ call: 2000, ret: 2050, ttl: 3 }, { call: 3000, ret: 3050, ttl: 3 }],
  observations,
});
const seen = (call: number, present: boolean) => ({ call, ret: call + 20, present, member: 'n1' });

t.test('a lease that lives its TTL and then goes passes', async (t) => {
  t.same(checkLeaseExpiry([lease([seen(5000, true), seen(5900, true), seen(7000, false)])], opts), []);
  // Gone just inside the tolerance: not early.
  t.same(checkLeaseExpiry([lease([seen(5600, false)])], opts), []);
});

t.test('an early expiry is found (TimeToLive or a KeepAlive answering 0)', async (t) => {
  const early = checkLeaseExpiry([lease([seen(4000, false)])], opts);
  t.equal(early.length, 1);
  t.match(early[0]?.message, /lease 7 .*expired early: TimeToLive on n1 found no lease at 4\.02s.*renewed at 3\.00s/);
  const byKeepAlive = checkLeaseExpiry([lease([], [{ call: 2000, ret: 2050, ttl: 3 }, { call: 3000, ret: 3050, ttl: 0 }])], opts);
  t.match(byKeepAlive[0]?.message, /expired early: KeepAlive answered TTL 0 at 3\.05s, but it was renewed at 2\.00s/);
});

t.test('a late expiry is found', async (t) => {
  const late = checkLeaseExpiry([lease([seen(9000, true), seen(10100, true)])], opts);
  t.equal(late.length, 1);
  t.match(late[0]?.message, /expired late: last renewed by 3\.05s, so gone by 10\.05s, but TimeToLive on n1 still found it at 10\.10s/);
});

t.test('an unanswered renewal counts for the late bound only', async (t) => {
  const ka = [{ call: 2000, ret: 2050, ttl: 3 }, { call: 3000, ret: 4500 }];
  // Not renewed as far as the early bound knows: gone at 5100 is fine (bound 2000 + 3000 - 500).
  t.same(checkLeaseExpiry([lease([seen(5100, false)], ka)], opts), []);
  // But it may have renewed until 4500: present at 11000 is still within 4500 + 3000 + 4000.
  t.same(checkLeaseExpiry([lease([seen(11000, true)], ka)], opts), []);
  t.equal(checkLeaseExpiry([lease([seen(11600, true)], ka)], opts).length, 1);
});

t.test('a disruption (new leader) moves the late bound, never the early one', async (t) => {
  const d = { ...opts, disruptions: [{ start: 8000, end: 9000 }] };
  t.same(checkLeaseExpiry([lease([seen(12000, true), seen(15900, true)])], d), []);
  t.equal(checkLeaseExpiry([lease([seen(16100, true)])], d).length, 1);
  // A disruption after the bound does not excuse a lease that should already have been gone.
  t.equal(checkLeaseExpiry([lease([seen(10100, true)])], { ...opts, disruptions: [{ start: 10080, end: 10090 }] }).length, 1);
  t.equal(checkLeaseExpiry([lease([seen(4000, false)])], d).length, 1);
});
