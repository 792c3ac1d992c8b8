# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads and checks every scenario of a suite on the controller, then runs them on the target in one module call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import clip, shown
from ansible_collections.pflab.netfilter.plugins.plugin_utils import prepare, scenarios

MAX_SCENARIOS = 1000


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('scenarios', 'parallel', 'timeout') + prepare.OPTIONS)

    def _read(self, item, loaded):
        """The scenario ``item`` names; a file listed again (the matrix lists each several times, with variants)
        is read once: the data is never changed (a variant changes a copy)."""
        args = {'src': item} if isinstance(item, str) else item
        if isinstance(args, dict) and isinstance(args.get('src'), str):
            args = dict(args, src=to_text(args['src']))

        def load(path):
            if path not in loaded:
                loaded[path] = scenarios.load(path)
            return loaded[path]

        return scenarios.read(args, lambda src: self._find_needle('files', src), loader=load)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        items = self._task.args.get('scenarios')
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_SCENARIOS:
            return dict(result, failed=True, msg='scenarios is a list of 1 to %d scenarios, got %s'
                        % (MAX_SCENARIOS, shown(items)))
        results, readable, loaded = [None] * len(items), [], {}
        for index, item in enumerate(items):
            try:
                readable.append((index, self._read(item, loaded)))
            except (scenarios.ScenarioFileError, AnsibleError) as e:
                results[index] = dict(failed=True, msg=clip(to_text(e)))
        module_args = dict((k, v) for k, v in self._task.args.items() if k != 'scenarios')
        module_args['scenarios'] = [data for dummy, data in readable]
        ran = prepare.run_prepared(self, 'pflab.netfilter.suite', module_args, task_vars) if readable else \
            dict(results=[])
        if ran.get('failed'):
            return dict(result, **ran)
        if len(ran.get('results') or []) != len(readable):
            return dict(result, failed=True, msg='the suite module returned %s results for %d scenarios'
                        % (shown(len(ran.get('results') or [])), len(readable)))
        for (index, dummy), run in zip(readable, ran['results']):
            results[index] = run
        for item, run in zip(items, results):
            run['item'] = item  # as a loop's results have it: the report names an unreadable scenario after it
        result.update(ran, results=results, summary=_summary(results))
        return result


def _summary(results):
    counts = dict(ran=0, skipped=0, failed=0, **{'not run': 0})
    for run in results:
        status = 'failed' if run.get('failed') else run.get('status')
        counts[status if status in counts else 'failed'] += 1
    return counts
