# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes report.json, report.md and report.html on the controller from every play host's scenario results."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.module_utils import names
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import shown
from ansible_collections.pflab.netfilter.plugins.plugin_utils import output, report
from ansible_collections.pflab.netfilter.plugins.plugin_utils.output import jinja2


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('results_var', 'hosts', 'dest', 'suite', 'run_id', 'latest'))

    def _hosts_runs(self, task_vars):
        args = self._task.args
        var = args.get('results_var', 'pflab_runs')
        hosts = args.get('hosts') or task_vars.get('ansible_play_hosts_all') or []
        hostvars = task_vars['hostvars']
        out = []
        for host in hosts:
            registered = hostvars[host].get(var) if host in hostvars else None
            runs = registered.get('results') if isinstance(registered, dict) else None
            out.append((to_text(host), output.plain(runs) if runs is not None else None))
        return out

    def _render(self, data):
        files = output.render(output.template_dir(self._find_needle, 'report', 'report.html.j2'), data, 'report',
                              (('report.md', 'report.md.j2'), ('report.html', 'report.html.j2')))
        files['report.json'] = json.dumps(data, indent=2, sort_keys=False) + '\n'
        return files

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
            output.write_run(dest, run_id, files, args.get('latest', True))
        except OSError as e:
            return dict(result, failed=True, msg='writing the report in %s: %s' % (folder, e))
        return result
