"""Webhooks (SPEC 11.1): signing (``signing``), receiver URL rules against SSRF (``urls``),
order-log entries -> deliveries (``messages``) and the dispatcher that sends them
(``dispatcher``). Registration rules are :mod:`api.services.webhooks`; storage is
:mod:`persistence.webhooks`."""
