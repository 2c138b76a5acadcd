"""The browser check of the built book (run by ``make browser-check``).

It needs a built book and a Chromium, so it stays out of the plain ``pytest tests`` run
(``make unit``): test_book_html.py is collected only when ``ACTLIB_BROWSER_CHECK=1``, which
``make browser-check`` sets.
"""

import os

if not os.environ.get("ACTLIB_BROWSER_CHECK"):
    collect_ignore_glob = ["test_*.py"]
