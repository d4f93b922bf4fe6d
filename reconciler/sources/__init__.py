"""Where desired state comes from: YAML files and directories (and, in the operator,
Kubernetes objects), turned into validated model instances with located errors."""
