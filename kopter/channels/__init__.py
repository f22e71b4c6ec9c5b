"""Channels: where a tenant's notifications are delivered besides kopter's own page.

A webhook (a signed POST of the notification as JSON), a Slack incoming webhook, or an email
address (SES). ``store`` keeps a tenant's channels, ``guard`` decides which URLs kopter may call,
``signing`` signs a webhook's body, ``messages`` renders a notification for each kind,
``senders`` makes one attempt, ``dispatch`` records that a notification's deliveries were all
enqueued, and ``slots`` bounds the deliveries one tenant has in flight. The tasks on the
``deliveries`` queue (tasks/deliveries.py) retry and park.
"""
