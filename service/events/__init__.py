"""Signed event webhooks: the outbox written with each change, the endpoints API, and the sender.

``outbox`` records an event in the transaction of the change that causes it;
``sender`` (run by the worker) signs and posts due messages per the Standard
Webhooks specification; ``addresses`` keeps them off private networks.
"""
