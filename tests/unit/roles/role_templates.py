# -*- coding: utf-8 -*-
# Copyright: (c) 2026, distweb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the template tests of the roles that write HAProxy
configurations (haproxy, db_router): a template rendered with Jinja2 from
the role's defaults, the lines of one section, and ``haproxy -c``."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os.path
import pathlib
import shutil
import subprocess

import jinja2
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[3] / 'roles'
HAPROXY = shutil.which('haproxy')


def render(role, name, **settings):
    """Template ``name`` of ``role``, rendered as Ansible would (trim_blocks)
    with the role's defaults that are plain values, then ``settings``."""
    defaults = yaml.safe_load((ROLES / role / 'defaults' / 'main.yml').read_text())
    values = dict((k, v) for k, v in defaults.items() if not (isinstance(v, str) and '{' in v))
    values.update(ansible_managed='Ansible managed')
    values.update(settings)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLES / role / 'templates')), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters['comment'] = lambda text: '#\n# %s\n#' % text
    env.filters.update(bool=bool, dirname=os.path.dirname, basename=os.path.basename)
    return env.get_template(name).render(**values)


def section(config, header):
    """The lines of one section (``backend web``), stripped, comments and
    blank lines left out."""
    lines = config.splitlines()
    start = lines.index(header)
    body = []
    for line in lines[start + 1:]:
        if line and not line.startswith(' '):
            break
        if line.strip() and not line.strip().startswith('#'):
            body.append(line.strip())
    return body


def haproxy_check(text, tmp_path):
    """``haproxy -c`` of a rendered configuration, without the lines that
    need the haproxy user or root here; the finished process."""
    path = tmp_path / 'haproxy.cfg'
    path.write_text('\n'.join(line for line in text.splitlines()
                              if line.strip() not in ('user haproxy', 'group haproxy', 'chroot /var/lib/haproxy',
                                                      'daemon')) + '\n')
    return subprocess.run([HAPROXY, '-c', '-f', str(path)], capture_output=True, text=True, check=False)
