# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AnsibleModule every module of the collection builds."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import clip


class PflabModule(AnsibleModule):
    """An AnsibleModule whose failure messages stay short: ansible-core's argument checks quote the
    refused value whole (a 1 MB string of the wrong type comes back as a 1 MB message)."""

    def fail_json(self, msg, **kwargs):
        super(PflabModule, self).fail_json(msg=clip(msg), **kwargs)
