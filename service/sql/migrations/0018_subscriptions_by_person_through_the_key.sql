-- A person's subscriptions are found through the primary key (list_id, subscriber_id), not an index
-- of their own (issue 14: 100,000 readers imported in 3 s).
--
-- subscriptions_subscriber_idx (subscriber_id) held an entry for every subscription, about two per
-- imported reader: 0.13 s of database time for 100,000 readers. A person's subscriptions are now
-- read from the primary key by PostgreSQL 18's skip scan, one descent per list (lists are few),
-- as migration 0016 does for roles. EXPLAIN ANALYZE on 100,000 readers (200,000 subscriptions, 3
-- lists), with the index and then through the key: a person's lists 0.02 ms and 0.02 ms, leaving
-- every list 0.06 and 0.05, deleting one person 0.37 and 0.19, deleting 1,000 people 17.7 and 13.7,
-- a console page filtered by list 0.07 and 0.04, the lists of a page of 50 people 0.15 and 0.22.
-- With 30 lists (254,000 subscriptions) a descent per list shows: a person's lists 0.02 and 0.05 ms,
-- leaving every list 0.06 and 0.07, deleting 1,000 people 11 and 28, the lists of a page of 50
-- people 0.10 and 0.90; still well under a millisecond for anything done for one person.

DROP INDEX subscriptions_subscriber_idx;
