# Headless Chromium: the validation report's HTML is opened and screenshotted in a test
# (tests/warehouse/reports/test_browser.py, marker `browser`).
apt_ensure chromium fonts-dejavu-core
