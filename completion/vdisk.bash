# bash completion for vdisk. Commands and options come from the binary itself
# (`vdisk --complete [COMMAND]`, made from the option tables the commands
# parse with); formats and -o keys from `vdisk formats --output json`.

# Format names, or with $1 the -o keys of format $1 ("key="), from the JSON
# that `vdisk formats --output json` prints (two-space indent: a format's
# "name" at 4 spaces, its create options' at 8).
_vdisk_formats() {
  "$_vdisk_bin" formats --output json 2>/dev/null | awk -v want="$1" '
    /^    "name": / { gsub(/[",]/, "", $2); fmt = $2; if (want == "") print fmt }
    /^        "name": / { gsub(/[",]/, "", $2); if (want != "" && fmt == want) print $2 "=" }'
}

_vdisk() {
  local cur prev cmd i fmt
  _vdisk_bin=${COMP_WORDS[0]}
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "$("$_vdisk_bin" --complete 2>/dev/null) help --version --help" -- "$cur"))
    return
  fi
  cmd=${COMP_WORDS[1]}
  if [[ $cmd == help ]]; then
    COMPREPLY=($(compgen -W "$("$_vdisk_bin" --complete 2>/dev/null)" -- "$cur"))
    return
  fi
  case $prev in
    -O|-f|--format|--output-format|-F)
      COMPREPLY=($(compgen -W "$(_vdisk_formats)" -- "$cur"))
      return ;;
    -o)
      fmt=
      for ((i = 2; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == -O ]] && fmt=${COMP_WORDS[i+1]}
      done
      [[ -n $fmt ]] && COMPREPLY=($(compgen -W "$(_vdisk_formats "$fmt")" -- "$cur"))
      compopt -o nospace 2>/dev/null
      return ;;
    --output)
      COMPREPLY=($(compgen -W "human json" -- "$cur"))
      return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$("$_vdisk_bin" --complete "$cmd" 2>/dev/null)" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _vdisk vdisk
