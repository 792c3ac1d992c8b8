# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes the fleet's flow verdict report on the controller from every play host's flow_verdict result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.module_utils import names
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import clip, shown
from ansible_collections.pflab.netfilter.plugins.plugin_utils import output, verdict
from ansible_collections.pflab.netfilter.plugins.plugin_utils.output import jinja2

ARGUMENT_SPEC = dict(
    dest=dict(type='path', required=True),
    run_id=dict(type='str'),
    results_var=dict(type='str', default='verdict_checked'),
    hosts=dict(type='list', elements='str'),
    fail_on=dict(type='str', default='differs', choices=list(verdict.FAIL_ON)),
    latest=dict(type='bool', default=True),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _results(self, args, task_vars):
        """[(host, result or None, why not)] of the hosts asked, or of every host of the play so far."""
        hostvars = task_vars['hostvars']
        out = []
        for host in args['hosts'] or task_vars.get('ansible_play_hosts_all') or []:
            registered = hostvars[host].get(args['results_var']) if host in hostvars else None
            registered = registered if isinstance(registered, dict) else {}
            if isinstance(registered.get('flows'), list) and isinstance(registered.get('host'), dict) \
                    and not registered.get('failed'):
                out.append((to_text(host), output.plain(registered), None))
            else:
                why = registered.get('msg') or ('unreachable' if registered.get('unreachable') else 'no result')
                out.append((to_text(host), None, 'flow_verdict: %s' % clip(to_text(why), 300)))
        return out

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(ARGUMENT_SPEC)  # raises on invalid arguments
        now = datetime.datetime.now(datetime.timezone.utc)
        run_id = args['run_id'] or '%s-verdict' % output.playbook_started().strftime('%Y%m%dT%H%M%SZ')
        if not names.valid('run_id', run_id):
            return dict(result, failed=True, msg='run_id %s is invalid: 1-100 of letters, digits, ".", "_" and "-"'
                        % shown(run_id))
        if jinja2 is None:
            return dict(result, failed=True, msg='the verdict report needs the Jinja2 Python library on the controller')
        data = verdict.build(run_id, now.strftime('%Y-%m-%dT%H:%M:%SZ'), self._results(args, task_vars),
                             args['fail_on'])
        try:
            files = output.render(output.template_dir(self._find_needle, 'verdict', 'verdict.html.j2'), data, 'verdict',
                                  (('verdict.md', 'verdict.md.j2'), ('verdict.html', 'verdict.html.j2')))
        except jinja2.TemplateError as e:
            return dict(result, failed=True, msg='rendering the verdict report: %s' % e)
        files['verdict.json'] = json.dumps(data, indent=2) + '\n'
        dest = os.path.abspath(os.path.expanduser(to_text(args['dest'])))
        folder = os.path.join(dest, run_id)
        result.update(changed=not self._task.check_mode, dir=folder, summary=data['summary'],
                      failing=data['summary']['failing'], gate_fails=data['summary']['gate_fails'],
                      files=[os.path.join(folder, n) for n in sorted(files)], written=not self._task.check_mode)
        if self._task.check_mode:
            return result
        try:
            output.write_run(dest, run_id, files, args['latest'])
        except OSError as e:
            return dict(result, failed=True, msg='writing the verdict report in %s: %s' % (folder, e))
        return result
