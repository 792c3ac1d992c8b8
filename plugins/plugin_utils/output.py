# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a report run on the controller: plain data, Markdown escaping, Jinja2 environments, and the run
folder with its ``latest`` link. Shared by the scenario report and the audit report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text

try:
    import jinja2
except ImportError:  # ansible-core requires Jinja2; kept for a clear message
    jinja2 = None

_MD_SPECIAL = re.compile(r'[!-/:-@\[-`{-~]')  # ASCII punctuation
_MD_ENTITIES = {'<': '&lt;', '&': '&amp;'}


def plain(value):
    """Registered results as plain JSON types (Ansible may hand over its own container types)."""
    return json.loads(json.dumps(value, default=to_text))


def md(value):
    """Text that Markdown shows as it is, in a table cell: every ASCII punctuation character backslash-escaped
    (CommonMark allows it for each), so no link, image, emphasis or HTML can form; '<' and '&' as entities;
    line breaks as spaces."""
    text = re.sub(r'\s+', ' ', to_text(value))
    return _MD_SPECIAL.sub(lambda m: _MD_ENTITIES.get(m.group(0)) or '\\' + m.group(0), text)


_ROLES = os.path.join(os.path.dirname(__file__), '..', '..', 'roles')


def template_dir(find_needle, role, template):
    """The folder of a report's templates: where the play finds ``template`` (``find_needle``, an action's
    _find_needle: its role's templates/), else role ``role``'s in this collection."""
    try:
        return os.path.dirname(find_needle('templates', template))
    except AnsibleError:
        return os.path.join(_ROLES, role, 'templates')


def render(template_dir, data, name, templates):
    """{file name: text} of each (file name, template) in ``templates``; HTML ones autoescaped.
    The data is passed to the templates as ``name``."""
    loader = jinja2.FileSystemLoader(template_dir)
    common = dict(loader=loader, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                  keep_trailing_newline=True)
    text = jinja2.Environment(autoescape=False, **common)
    text.filters['md'] = md
    html = jinja2.Environment(autoescape=True, **common)
    return dict((out, (html if out.endswith('.html') else text).get_template(template).render(**{name: data}))
                for out, template in templates)


def write_run(dest, run_id, files, latest=True):
    """Write ``files`` ({relative name: text}) in ``dest/run_id`` and point ``dest/latest`` at it; OSError."""
    folder = os.path.join(dest, run_id)
    for name, content in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(content)
    if latest:
        link, tmp_link = os.path.join(dest, 'latest'), os.path.join(dest, '.latest.%d' % os.getpid())
        if os.path.lexists(link) and not os.path.islink(link):
            raise OSError('%s exists and is not a link; not replacing it' % link)
        os.symlink(run_id, tmp_link)
        os.replace(tmp_link, link)
    return folder


def playbook_started():
    """When the ansible-playbook process (this worker's parent) started: one run, one folder, also across the
    batches of a serial play. Now, where /proc cannot tell."""
    try:
        with open('/proc/%d/stat' % os.getppid()) as f:
            ticks = int(f.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/stat') as f:
            boot = int(next(line.split()[1] for line in f if line.startswith('btime ')))
        return datetime.datetime.fromtimestamp(boot + ticks // os.sysconf('SC_CLK_TCK'), datetime.timezone.utc)
    except (OSError, ValueError, IndexError, StopIteration):
        return datetime.datetime.now(datetime.timezone.utc)
