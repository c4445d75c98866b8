# bash completion for babl(1).
# Install: copy to /usr/share/bash-completion/completions/babl, or source it.
#
# Completes options, verbs, and service names: those are the first column of
# `babl ls`, asked of the node named on the line (-n) or in BABL_NODE, with a
# short time limit and quietly (no node, no names).

_babl_services()
{
	local node=$1
	local -a cmd=(babl -t 2)
	[[ -n $node ]] && cmd+=(-n "$node")
	if command -v timeout >/dev/null 2>&1; then
		cmd=(timeout 3 "${cmd[@]}")
	fi
	"${cmd[@]}" ls </dev/null 2>/dev/null |
		awk '$1 ~ /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/ && $1 != "NAME" { print $1 }'
}

_babl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion -n : || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local verbs="deploy ls info log status verify keygen call"
	local opts="-n --node -t --timeout --id --progress -h --help --version"

	# Find the verb or service: the first word that is not an option or an
	# option's argument.  Remember -n for asking the right node.
	local i=1 node="" cmd="" cmdpos=0
	while ((i < cword)); do
		case ${words[i]} in
		-n | --node) node=${words[i + 1]-}; i=$((i + 2)); continue ;;
		-t | --timeout | --id) i=$((i + 2)); continue ;;
		--node=*) node=${words[i]#--node=} ;;
		-*) ;;
		*) cmd=${words[i]}; cmdpos=$i; break ;;
		esac
		i=$((i + 1))
	done

	if [[ -z $cmd ]]; then
		case $prev in
		-n | --node)
			COMPREPLY=($(compgen -W "ipc:// tcp://" -- "$cur"))
			compopt -o nospace 2>/dev/null
			return ;;
		-t | --timeout | --id) return ;;
		esac
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$verbs $(_babl_services "$node")" -- "$cur"))
		fi
		return
	fi

	local nth=$((cword - cmdpos)) # 1: the word right after the verb
	case $cmd in
	deploy)
		local limits="--timeout --cpu --mem --max-input --fsize --nproc"
		# Skip the limit options to find NAME and what follows it.
		local j=$((cmdpos + 1)) args=()
		while ((j < cword)); do
			case ${words[j]} in
			--timeout | --cpu | --mem | --max-input | --fsize | --nproc) j=$((j + 2)); continue ;;
			*) args+=("${words[j]}") ;;
			esac
			j=$((j + 1))
		done
		case $prev in
		--timeout | --cpu | --mem | --max-input | --fsize | --nproc) return ;;
		esac
		if ((${#args[@]} == 0)); then
			if [[ $cur == -* ]]; then
				COMPREPLY=($(compgen -W "$limits" -- "$cur"))
			else
				COMPREPLY=($(compgen -W "$(_babl_services "$node")" -- "$cur"))
			fi
		elif ((${#args[@]} == 1)); then
			compopt -o filenames 2>/dev/null
			COMPREPLY=($(compgen -W "--" -- "$cur") $(compgen -f -X '!*.lua' -- "$cur") $(compgen -d -- "$cur"))
		elif [[ ${args[1]} == -- ]] && ((${#args[@]} == 2)); then
			COMPREPLY=($(compgen -c -- "$cur"))
		else
			compopt -o filenames 2>/dev/null
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		;;
	info | log | call)
		((nth == 1)) && COMPREPLY=($(compgen -W "$(_babl_services "$node")" -- "$cur"))
		((nth > 1)) && [[ $cmd == call ]] && COMPREPLY=($(compgen -f -- "$cur"))
		;;
	keygen)
		((nth == 1)) && COMPREPLY=($(compgen -W "--force" -- "$cur"))
		;;
	ls | status | verify) ;;
	*) # a service: its arguments are its own; offer file names
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	esac
}
complete -F _babl babl
