"""``emo-stream serve --cluster``: the server as a Ray Serve application. Only this package imports Ray, and only
the ``--cluster`` path imports this package: without it nothing of Ray is loaded."""
