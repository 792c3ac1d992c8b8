"""Take the README's pictures from a real report.html (make screenshots).

    python docs/screenshot.py report/latest/report.html docs/images

Writes report-overview.png (the top of the page: hosts and the order rule) and
report-<id>.png for one scenario's section, in Debian's headless Chromium.
"""

import os
import sys

from playwright.sync_api import sync_playwright

SCENARIO = 'experiment-2'
# Debian's chromium, offline: no sandbox as root, no background connections.
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def main(report_html, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1200, 'height': 820}, device_scale_factor=1)
            page.goto('file://' + os.path.abspath(report_html))
            page.screenshot(path=os.path.join(out_dir, 'report-overview.png'))
            section = page.locator('section.scenario[data-scenario="%s"]' % SCENARIO)
            section.screenshot(path=os.path.join(out_dir, 'report-%s.png' % SCENARIO))
        finally:
            browser.close()


if __name__ == '__main__':
    main(*sys.argv[1:3])
