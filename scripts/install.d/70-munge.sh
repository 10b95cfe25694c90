# MUNGE for the credit API's user authentication tests (tests/services/munge.py).
apt_ensure munge libmunge2
