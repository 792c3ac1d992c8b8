# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes the fleet audit report on the controller from every play host's filter_facts reading."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.module_utils import names
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import clip, shown
from ansible_collections.pflab.netfilter.plugins.plugin_utils import audit, output
from ansible_collections.pflab.netfilter.plugins.plugin_utils.output import jinja2

try:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest
except ImportError:
    CollectorRegistry = None

ARGUMENT_SPEC = dict(
    dest=dict(type='path', required=True),
    run_id=dict(type='str'),
    results_var=dict(type='str', default='audit_read'),
    hosts=dict(type='list', elements='str'),
    fail_on=dict(type='str', default='high', choices=list(audit.FAIL_ON)),
    junit=dict(type='bool', default=True),
    textfiles=dict(type='bool', default=False),
    latest=dict(type='bool', default=True),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _readings(self, args, task_vars):
        """[(host, reading or None, why not)] of the hosts asked, or of every host of the play read so far.
        The reading is the one registered in this run, never a fact a cache kept from an earlier one."""
        hostvars = task_vars['hostvars']
        hosts = args['hosts'] or task_vars.get('ansible_play_hosts_all') or []
        out = []
        for host in hosts:
            registered = hostvars[host].get(args['results_var']) if host in hostvars else None
            registered = registered if isinstance(registered, dict) else {}
            reading = (registered.get('ansible_facts') or {}).get('pflab_filter_facts')
            if isinstance(reading, dict) and reading.get('schema', '').startswith('pflab.netfilter/filter_facts/'):
                out.append((to_text(host), output.plain(reading), None))
            elif registered or args['hosts'] or host in (task_vars.get('ansible_play_batch') or []):
                why = registered.get('msg') or ('unreachable' if registered.get('unreachable') else 'no reading')
                out.append((to_text(host), None, 'filter_facts: %s' % clip(to_text(why), 300)))
        return out

    def _files(self, data, args):
        files = output.render(output.template_dir(self._find_needle, 'audit', 'audit.html.j2'), data, 'audit',
                              (('audit.md', 'audit.md.j2'), ('audit.html', 'audit.html.j2')))
        files['audit.json'] = json.dumps(data, indent=2) + '\n'
        if args['junit']:
            files['audit.junit.xml'] = audit.junit(data)
        textfiles = {}
        if args['textfiles']:
            names_ = audit.file_names([row['host'] for row in data['hosts']])
            for row in data['hosts']:
                textfiles[row['host']] = 'textfiles/%s.prom' % names_[row['host']]
                files[textfiles[row['host']]] = generate_latest(audit.metrics(row, CollectorRegistry, Gauge)).decode()
        return files, textfiles

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(ARGUMENT_SPEC)  # raises on invalid arguments
        started = output.playbook_started()
        run_id = args['run_id'] or '%s-audit' % started.strftime('%Y%m%dT%H%M%SZ')
        if not names.valid('run_id', run_id):
            return dict(result, failed=True, msg='run_id %s is invalid: 1-100 of letters, digits, ".", "_" and "-"'
                        % shown(run_id))
        if jinja2 is None:
            return dict(result, failed=True, msg='the audit report needs the Jinja2 Python library on the controller')
        if args['textfiles'] and CollectorRegistry is None:
            return dict(result, failed=True, msg='textfiles=true needs the prometheus_client Python library on the '
                                                 'controller (pip install prometheus_client)')
        now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        data = audit.build(run_id, now, self._readings(args, task_vars), args['fail_on'])
        try:
            files, textfiles = self._files(data, args)
        except jinja2.TemplateError as e:
            return dict(result, failed=True, msg='rendering the audit report: %s' % e)
        dest = os.path.abspath(os.path.expanduser(to_text(args['dest'])))
        folder = os.path.join(dest, run_id)
        result.update(changed=not self._task.check_mode, dir=folder, summary=data['summary'],
                      failing=data['summary']['failing'], files=[os.path.join(folder, n) for n in sorted(files)],
                      textfiles=dict((host, os.path.join(folder, name)) for host, name in textfiles.items()),
                      written=not self._task.check_mode)
        if self._task.check_mode:
            return result
        try:
            output.write_run(dest, run_id, files, args['latest'])
        except OSError as e:
            return dict(result, failed=True, msg='writing the audit report in %s: %s' % (folder, e))
        return result
