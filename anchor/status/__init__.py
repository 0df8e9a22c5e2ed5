"""W3C Bitstring Status Lists: the pure model and the service that keeps, publishes and
checks them. The package itself holds no code; read it in this order:

* :mod:`anchor.status.bitstring` (pure): the bitstring, its encoding and its limits;
* :mod:`anchor.status.credential` (pure): the status-list credential and its entries,
  built, parsed and validated (§3.2);
* :mod:`anchor.status.model` (pure): the lists the service keeps, as values, and the checks
  of requests;
* :mod:`anchor.status.allocation` (pure): which positions an allocation hands out;
* :mod:`anchor.status.repository` (I/O): the tables and every SQL statement on them;
* :mod:`anchor.status.custody` (I/O): the issuers' status signing keys;
* :mod:`anchor.status.authorisation` (I/O): the DID checks that authorise a status key;
* :mod:`anchor.status.publisher` (I/O): authorise, write, log, record; the renewal loop;
* :mod:`anchor.status.check` (I/O): a verifier's check of a credential's status.
"""
