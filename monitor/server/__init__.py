"""``mailprobe serve``: the long-running face.

One module per job: ``scheduler`` runs checks on their intervals, ``http`` serves the
endpoints, ``webauth`` and ``tls`` apply the ``web`` section, ``page`` renders the status
page, ``extensions`` is the seam for other long-running sources (log followers and their
collectors), ``reload`` tracks config reloads, and ``daemon`` ties them together with
signals.
"""
