# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes report.json, report.md and report.html on the controller from every play host's scenario results."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.module_utils import names
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import shown
from ansible_collections.pflab.netfilter.plugins.plugin_utils import report

try:
    import jinja2
except ImportError:  # ansible-core requires Jinja2; kept for a clear message
    jinja2 = None

_MD_SPECIAL = re.compile(r'[!-/:-@\[-`{-~]')  # ASCII punctuation
_MD_ENTITIES = {'<': '&lt;', '&': '&amp;'}
_FALLBACK_TEMPLATES = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'report', 'templates')


def _plain(value):
    """Registered results as plain JSON types (Ansible may hand over its own container types)."""
    return json.loads(json.dumps(value, default=to_text))


def _md(value):
    """Text that Markdown shows as it is, in a table cell: every ASCII punctuation character backslash-escaped
    (CommonMark allows it for each), so no link, image, emphasis or HTML can form; '<' and '&' as entities;
    line breaks as spaces."""
    text = re.sub(r'\s+', ' ', to_text(value))
    return _MD_SPECIAL.sub(lambda m: _MD_ENTITIES.get(m.group(0)) or '\\' + m.group(0), text)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('results_var', 'hosts', 'dest', 'suite', 'run_id', 'latest'))

    def _template_dir(self):
        try:
            return os.path.dirname(self._find_needle('templates', 'report.html.j2'))
        except AnsibleError:
            return _FALLBACK_TEMPLATES

    def _hosts_runs(self, task_vars):
        args = self._task.args
        var = args.get('results_var', 'pflab_runs')
        hosts = args.get('hosts') or task_vars.get('ansible_play_hosts_all') or []
        hostvars = task_vars['hostvars']
        out = []
        for host in hosts:
            registered = hostvars[host].get(var) if host in hostvars else None
            runs = registered.get('results') if isinstance(registered, dict) else None
            out.append((to_text(host), _plain(runs) if runs is not None else None))
        return out

    def _render(self, data):
        loader = jinja2.FileSystemLoader(self._template_dir())
        common = dict(loader=loader, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                      keep_trailing_newline=True)
        md = jinja2.Environment(autoescape=False, **common)
        md.filters['md'] = _md
        html = jinja2.Environment(autoescape=True, **common)
        return {
            'report.json': json.dumps(data, indent=2, sort_keys=False) + '\n',
            'report.md': md.get_template('report.md.j2').render(report=data),
            'report.html': html.get_template('report.html.j2').render(report=data),
        }

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        suite = to_text(args.get('suite', 'run'))
        now = datetime.datetime.now(datetime.timezone.utc)
        run_id = to_text(args.get('run_id') or '%s-%s' % (now.strftime('%Y%m%dT%H%M%SZ'), suite))
        if not names.valid('run_id', run_id):
            return dict(result, failed=True, msg='run_id %s is invalid: 1-100 of letters, digits, ".", "_" and "-"'
                        % shown(run_id))
        if 'dest' not in args:
            return dict(result, failed=True, msg='dest (the report directory on the controller) is required')
        dest = os.path.abspath(os.path.expanduser(to_text(args['dest'])))
        if jinja2 is None:
            return dict(result, failed=True, msg='the report needs the Jinja2 Python library on the controller')
        data = report.build(suite, run_id, now.strftime('%Y-%m-%dT%H:%M:%SZ'), self._hosts_runs(task_vars))
        try:
            files = self._render(data)
        except jinja2.TemplateError as e:
            return dict(result, failed=True, msg='rendering the report: %s' % e)
        folder = os.path.join(dest, run_id)
        result.update(changed=True, dir=folder, summary=data['summary'], rule=data['rule']['verdict'],
                      article=data['article']['verdict'], files=[os.path.join(folder, name) for name in sorted(files)],
                      problems=report.problems(data, ('failed', 'missing', 'differs', 'skipped')),
                      written=not self._task.check_mode)
        if self._task.check_mode:
            return result
        try:
            os.makedirs(folder, exist_ok=True)
            for name, content in files.items():
                with open(os.path.join(folder, name), 'w', encoding='utf-8') as f:
                    f.write(content)
            if args.get('latest', True):
                link, tmp_link = os.path.join(dest, 'latest'), os.path.join(dest, '.latest.%d' % os.getpid())
                if os.path.lexists(link) and not os.path.islink(link):
                    raise OSError('%s exists and is not a link; not replacing it' % link)
                os.symlink(run_id, tmp_link)
                os.replace(tmp_link, link)
        except OSError as e:
            return dict(result, failed=True, msg='writing the report in %s: %s' % (folder, e))
        return result
