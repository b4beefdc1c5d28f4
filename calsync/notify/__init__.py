"""Invites and notification emails (DESIGN §5.5).

A committed change becomes a :class:`~calsync.notify.values.Notice`; for each person to tell
(a :class:`~calsync.notify.values.Recipient`), :func:`~calsync.notify.compose.compose` makes
the emails: the affected sessions in words (text and HTML, from Jinja2 templates in
``templates/<kind>/``, overridable by ``mail.templates_dir``) and one iTIP object per session
(:func:`~calsync.notify.itip.itip_object`: METHOD REQUEST or CANCEL, the session's stable UID
and SEQUENCE). A :class:`~calsync.notify.transport.MailTransport` (SMTP or a directory of
``.eml`` files) delivers them and reports failures as transient or permanent.

Modules: ``values`` (plain data), ``itip`` (the calendar part), ``compose`` (the email),
``transport`` (delivery), ``owner_alert`` (the reconnect email), and the database-backed
queue: ``outbox`` (messages queued in the same transaction as the change, delivered with
retries) and ``owner_notices`` (queueing owner alerts).
"""
